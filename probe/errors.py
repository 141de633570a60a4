"""One exception type for every error a user can cause.

The CLI prints a ``ProbeError`` as a single line and exits non-zero; anything
else is a bug and keeps its traceback.
"""


__all__ = ["ProbeError", "ConfigError", "check", "first_line"]


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type when it has none): the one-line error text."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class ProbeError(Exception):
    """A user-facing error: bad model spec, bad shape, offline hub, full disk..."""


def check(condition: bool, message: str) -> None:
    """Raise ``ProbeError(message)`` unless ``condition`` holds."""
    if not condition:
        raise ProbeError(message)


class ConfigError(ProbeError, ValueError):
    """A setting that cannot be used: names the field, the value and what it must be (also a ValueError,
    the type Python code expects for a bad argument value)."""
