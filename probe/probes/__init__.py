"""Probes built on the latent vector field: dictionary, memorization, OOD, comparison."""
