"""How a seed's iteration ended (shared by the engine, every solver and the results)."""

__all__ = ["STATUS", "CONVERGED", "CYCLE", "UNCONVERGED", "DIVERGED", "RUNNING"]

STATUS = ("converged", "cycle", "unconverged", "diverged")
CONVERGED, CYCLE, UNCONVERGED, DIVERGED, RUNNING = 0, 1, 2, 3, 4
