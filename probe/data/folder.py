"""Image sets from PIL images: a local folder of files, and (via hub.py) HF datasets.

Images are decoded one by one, after the subset is chosen, and resized on the way when a
resolution is given, so a folder of large photos never sits in memory at full size.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import ProbeError
from .imageset import ImageSet, as_nchw, resize_images, subset_indices

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SPLIT_DIRS = {"train": ("train", "training"), "test": ("test", "testing", "val", "validation")}


def pil_to_array(img) -> np.ndarray:
    """A PIL image -> uint8 [H, W] (grey) or [H, W, 3] (everything else, alpha dropped)."""
    if img.mode in ("L", "1", "I", "I;16", "F"):
        return np.asarray(img.convert("L"))
    return np.asarray(img.convert("RGB"))


def stack_pictures(getters: Sequence[Callable[[], object]], resolution: int | None, what: str,
                   resize: str = "bilinear") -> tuple[torch.Tensor, list[str]]:
    """Decode PIL images; resize each (with ``resize``) when ``resolution`` is set; grey + colour mixed -> all RGB."""
    imgs, ops = [], []
    for get in getters:
        x = as_nchw(pil_to_array(get())[None])
        imgs.append(resize_images(x, resolution, filter=resize) if resolution else x)
    if resolution:
        ops.append(f"resize({resolution}, mode=center-crop, filter={resize})")
    sizes = {tuple(x.shape[-2:]) for x in imgs}
    if len(sizes) > 1:
        raise ProbeError(f"{what}: images differ in size ({', '.join(f'{h}x{w}' for h, w in sorted(sizes)[:4])}"
                         f"{', ...' if len(sizes) > 4 else ''}); pass a resolution to centre-crop and resize them")
    if len({x.shape[1] for x in imgs}) > 1:
        imgs = [x.expand(-1, 3, -1, -1) for x in imgs]
        ops.append("grey images repeated to RGB")
    return torch.cat(imgs).contiguous(), ops


def list_folder(folder: Path, split: str) -> tuple[Path, list[Path], list[int] | None, list[str] | None]:
    """Image files under ``folder`` (or its ``train``/``test`` subfolder); labels when every image
    sits in a first-level class subfolder."""
    for name in SPLIT_DIRS.get(split, (split,)):
        if (folder / name).is_dir():
            folder = folder / name
            break
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    if not files:
        raise ProbeError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in {folder}")
    depth = {len(p.relative_to(folder).parts) for p in files}
    if depth == {2}:
        classes = sorted({p.parent.name for p in files})
        index = {c: i for i, c in enumerate(classes)}
        return folder, files, [index[p.parent.name] for p in files], classes
    return folder, files, None, None


def load_folder(path: str | Path, *, split: str = "test", n: int | None = None, seed: int = 0,
                resolution: int | None = None, resize: str = "bilinear") -> ImageSet:
    """Every image file under ``path`` (sorted by path; class subfolders give labels), or the
    one image when ``path`` is an image file."""
    from PIL import Image, UnidentifiedImageError

    if Path(path).is_file():
        folder, files, labels, classes = Path(path), [Path(path)], None, None
    else:
        folder, files, labels, classes = list_folder(Path(path), split)
    keep = subset_indices(len(files), n, seed) if n is not None else np.arange(len(files))

    def opener(p: Path):
        def get():
            try:
                with Image.open(p) as im:
                    im.load()
                    return im
            except (OSError, UnidentifiedImageError) as e:
                raise ProbeError(f"cannot read image {p}: {e}") from e
        return get

    images, ops = stack_pictures([opener(files[i]) for i in keep], resolution, str(folder), resize)
    return ImageSet(images, None if labels is None else torch.tensor([labels[i] for i in keep]), classes,
                    name=Path(path).stem, source=str(folder), split=split,
                    indices=torch.from_numpy(keep.astype(np.int64)),
                    ops=([f"subset(n={n}, seed={seed})"] if n is not None else []) + ops,
                    names=[_name(files[i], folder) for i in keep])


def _name(path: Path, folder: Path) -> str:
    try:
        return str(path.relative_to(folder)) if folder.is_dir() else path.name
    except ValueError:
        return path.name
