"""``load_images(spec)``: one entry point for every image set the probes use."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ProbeError
from ..images import RESIZE_HELP, check_resize
from .arrays import load_npz
from .builtin import BUILTIN
from .folder import IMAGE_SUFFIXES, load_folder
from .imageset import ImageSet

SPEC_HELP = ("a built-in name (see dataset_names()), a folder of images (class subfolders give labels; "
             "a train/ or test/ subfolder is used for that split) or one image file, "
             "a .npz with 'images' (and optional 'labels', 'classes'), a .parquet file, "
             "or hf:<dataset>[:<config or local path>] for HF datasets")


def dataset_names() -> dict[str, str]:
    """Built-in set names with a one-line description each."""
    return {name: desc for name, (_, desc) in BUILTIN.items()}


def _hf(spec: str, **kw) -> ImageSet:
    from .hub import load_hf  # datasets is heavy: import only when asked for

    rest = spec[3:] if spec.startswith("hf:") else spec
    if not rest:
        raise ProbeError("hf: needs a dataset name, e.g. hf:cifar100 or hf:imagefolder:/path/to/folder")
    name, _, config = rest.partition(":")
    if config and Path(config).expanduser().exists():  # hf:imagefolder:<dir>, hf:parquet:<file>
        p = Path(config).expanduser()
        return load_hf(name, data_dir=str(p) if p.is_dir() else None, data_files=None if p.is_dir() else str(p), **kw)
    return load_hf(name, config or None, **kw)


def load_images(spec: str | Path, split: str = "test", n: int | None = None, seed: int = 0,
                resolution: int | None = None, channels: int | None = None, resize: str = "bilinear") -> ImageSet:
    """Load an image set as uint8 ``[N, C, H, W]``.

    ``spec``: {help}. ``n`` keeps a reproducible random subset (``default_rng(seed)``; the paper
    uses 500 random test images); ``resolution`` centre-crops to a square and resizes with
    ``resize`` ({resize}); ``channels`` converts (3 -> 1 is luminance, 1 -> 3 repeats grey).
    Asking for more images than the set holds is an error.
    """
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise ProbeError(f"n must be a positive integer, got {n!r}")
    if channels is not None and channels not in (1, 3):
        raise ProbeError(f"channels must be 1 or 3, got {channels!r}")
    if resolution is not None and (not isinstance(resolution, int) or isinstance(resolution, bool) or resolution < 1):
        raise ProbeError(f"resolution must be a positive integer, got {resolution!r}")
    check_resize(resize)
    kw: dict[str, Any] = dict(split=split, n=n, seed=seed, resolution=resolution, resize=resize)
    key = str(spec).strip()
    path = Path(key).expanduser()
    if key.lower() in BUILTIN:
        loader = BUILTIN[key.lower()][0]
        extra: dict[str, Any] = {"channels": channels} if getattr(loader, "takes_channels", False) else {}
        extra.update({"resize": resize} if getattr(loader, "takes_resize", False) else {})
        images = loader(split, n, seed, resolution, **extra)
    elif key.startswith("hf:"):
        images = _hf(key, **kw)
    elif path.is_dir() or (path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES):
        images = load_folder(path, **kw)
    elif path.suffix.lower() == ".npz":
        images = load_npz(path, n=n, seed=seed, split=split)
    elif path.suffix.lower() in (".parquet", ".arrow") and path.is_file():
        from .hub import load_hf

        images = load_hf(path.suffix[1:].lower(), data_files=str(path), **kw)
    elif key.startswith(("/", "./", "../", "~")) or path.suffix.lower() in IMAGE_SUFFIXES | {".parquet", ".arrow"}:
        raise ProbeError(f"no such file or folder: {key}")
    elif key.startswith("noise:"):
        raise ProbeError(f"unknown noise kind {key!r}; choose noise:uniform or noise:gaussian")
    else:
        try:
            images = _hf(key, **kw)
        except ProbeError as e:
            raise ProbeError(f"{e} ({key!r} is not a built-in set: {', '.join(BUILTIN)})") from e
    if channels is not None:
        images = images.to_channels(channels)
    if resolution is not None:
        images = images.resize(resolution, filter=resize)
    return images


if load_images.__doc__:  # None under python -OO
    load_images.__doc__ = load_images.__doc__.replace("{help}", SPEC_HELP).replace("{resize}", RESIZE_HELP)
