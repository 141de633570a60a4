"""Where and how a search runs: the device (checked before any work) and torch's CPU threads."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from ..errors import ConfigError

__all__ = ["check_device", "threads"]


def check_device(device: str | torch.device | None) -> torch.device | None:
    """``device`` as a torch.device, or one ConfigError line when this machine does not have it."""
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"device must be cpu, cuda or cuda:N, got {device!r}") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r}: CUDA is not available on this machine "
                              f"(torch {torch.__version__}); use device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r} does not exist: this machine has {torch.cuda.device_count()} "
                              f"CUDA device(s)")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError(f"device {device!r} was asked for, but MPS is not available here")
    elif dev.type != "cpu":
        raise ConfigError(f"device must be cpu, cuda or cuda:N, got {device!r}")
    return dev


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """torch's CPU thread count set to ``n`` inside, the previous count restored after (None: unchanged)."""
    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
