"""The latent vector field engine: iterate f(z) = E(D(z)), find attractors, diagnose the dynamics."""
from .attractors import AttractorSet, find_attractors
from .config import FieldConfig
from .diagnose import Diagnosis, diagnose
from .iterate import STATUS, Trajectories, iterate
from .merge import merge_end_points
from .seeds import gaussian_seeds
from .solvers import SOLVERS
from .stability import spectral_radius

__all__ = ["iterate", "Trajectories", "STATUS", "find_attractors", "AttractorSet", "FieldConfig", "SOLVERS",
           "spectral_radius", "merge_end_points", "diagnose", "Diagnosis", "gaussian_seeds"]
