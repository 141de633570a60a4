"""open_clip image encoders as latent maps, and their surrogate autoencoders.

``probe.load("open_clip:<arch>/<pretrained>")`` builds the model with open_clip's own
``create_model`` by name. ``<pretrained>`` is an open_clip tag (``laion2b_s34b_b79k``), a local
checkpoint file (``open_clip:ViT-B-32//path/to/open_clip_pytorch_model.bin``) or ``random``
(random initialisation: a null model, and what the tests use). The bare encoder has no decoder,
so its ``decode`` (and ``f``) raise until ``probe fit-decoder`` fits a surrogate
(:mod:`probe.maps.surrogate`); the saved folder loads back through ``probe.load(folder)``.

The latent is the projected image embedding (the joint image-text space), L2-normalized and
scaled by sqrt(d) (``latent="sphere"``, the default): CLIP compares embeddings by cosine only, so
their norm carries no meaning, and on the sphere of radius sqrt(d) the paper's Gaussian seeds
N(0, I) have the same norm as data latents. ``latent="raw"`` keeps the unnormalized embedding.
Images enter in [0, 1] at any size; centre crop to a square, resizing to the model's input size
and its mean/std normalization happen inside the adapter.
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import cast
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import asdict
from ..errors import ProbeError
from ..io import load_json, load_tensors, save_json, save_tensors
from .base import LatentMap
from .surrogate import DecoderConfig, FitConfig, UpconvDecoder, fit_decoder

LATENTS = ("sphere", "raw")
MANIFEST = "probe_map.json"
ENCODER_WEIGHTS = "encoder.safetensors"
DECODER_WEIGHTS = "decoder.safetensors"
WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".safetensors", ".ckpt")
RANDOM = "random"


def _open_clip():
    try:
        import open_clip
    except ImportError as e:
        raise ProbeError("open_clip models need open_clip_torch: pip install 'latent-probe[clip]'") from e
    return open_clip


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


# -- resolving <arch>/<pretrained> -------------------------------------------------------------
def parse_tag(tag: str) -> tuple[str, str]:
    """``"ViT-B-32/laion2b_s34b_b79k"`` -> (arch, pretrained); the path may hold more slashes."""
    arch, _, pretrained = str(tag).partition("/")
    oc = _open_clip()
    if not arch:
        raise ProbeError(f"open_clip:{tag}: give open_clip:<arch>/<pretrained>, e.g. open_clip:ViT-B-32/laion2b_s34b_b79k")
    if arch not in oc.list_models():
        raise ProbeError(f"open_clip:{tag}: unknown architecture {arch!r} ({len(oc.list_models())} known, "
                         f"e.g. ViT-B-32, ViT-B-16, RN50; see open_clip.list_models())")
    if not pretrained:
        tags = oc.list_pretrained_tags_by_model(arch)
        raise ProbeError(f"open_clip:{arch}: name the weights: open_clip:{arch}/<tag> (tags: {', '.join(tags) or 'none'}), "
                         f"open_clip:{arch}/<path to .bin or .safetensors>, or open_clip:{arch}/{RANDOM}")
    return arch, pretrained


def _is_path(pretrained: str) -> bool:
    return os.sep in pretrained or pretrained.startswith((".", "~")) or pretrained.lower().endswith(WEIGHT_SUFFIXES)


def _cached_checkpoint(pcfg: dict, cache_dir: str | None) -> str | None:
    """The local file open_clip would load for a tag, if it is already cached."""
    oc = _open_clip()
    hub = pcfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        model_id, filename = os.path.split(hub)
        filename = filename or getattr(oc.pretrained, "HF_WEIGHTS_NAME", "open_clip_pytorch_model.bin")
        safe = getattr(oc.pretrained, "_get_safe_alternatives", lambda name: [])  # private; open_clip >= 2.2x
        for name in [*safe(filename), filename]:
            hit = try_to_load_from_cache(model_id, name, cache_dir=cache_dir)
            if isinstance(hit, str) and os.path.isfile(hit):
                return hit
    url = pcfg.get("url", "")
    if url:
        path = os.path.join(cache_dir or os.path.expanduser("~/.cache/clip"), os.path.basename(url))
        if os.path.isfile(path):
            return path
    return None


def _reachable(pcfg: dict, timeout: float = 3.0) -> bool:
    """Whether the host that serves a tag's weights answers at all (fail fast when offline)."""
    from ..data.hub import endpoint, offline, unreachable  # the one hub module: same switches as models and data

    if offline():
        return False
    url = endpoint() if pcfg.get("hf_hub") else pcfg.get("url", "")
    if not urlparse(url).hostname:
        return False
    return unreachable(url, timeout) is None


def _resolve(arch: str, pretrained: str, cache_dir: str | None) -> tuple[str | None, dict | None]:
    """(value for open_clip's ``pretrained``, preprocessing the tag implies when given a file)."""
    oc = _open_clip()
    if pretrained == RANDOM:
        return None, None
    pcfg = oc.get_pretrained_cfg(arch, pretrained)
    if pcfg:
        cached = _cached_checkpoint(pcfg, cache_dir)
        if cached:  # load the cached file directly: no network round trips, same preprocessing
            keep = ("mean", "std", "interpolation", "resize_mode")
            return cached, {k: pcfg[k] for k in keep if k in pcfg}
        if not _reachable(pcfg):
            raise ProbeError(
                f"open_clip:{arch}/{pretrained}: weights are not cached and the model hub cannot be reached (offline); "
                f"download the checkpoint elsewhere and give its path: open_clip:{arch}/<path to open_clip_pytorch_model.bin "
                f"or .safetensors>")
        return pretrained, None
    path = Path(pretrained).expanduser()
    if path.is_file():
        return str(path), None
    if _is_path(pretrained):
        raise ProbeError(f"open_clip:{arch}/{pretrained}: no such checkpoint file")
    tags = oc.list_pretrained_tags_by_model(arch)
    raise ProbeError(f"open_clip:{arch}/{pretrained}: unknown pretrained tag; {arch} has {', '.join(tags) or 'none'}, "
                     f"or give a checkpoint path or {RANDOM}")


def _create(arch: str, pretrained: str | None, overrides: dict | None, preprocess: dict | None,
            cache_dir: str | None, label: str):
    """open_clip.create_model by name; every failure becomes one line naming the spec."""
    oc = _open_clip()
    root = logging.getLogger()
    level = root.level
    if pretrained is None:  # random init is asked for (or weights follow): silence open_clip's warning
        root.setLevel(max(level, logging.ERROR))
    try:
        return oc.create_model(arch, pretrained=pretrained, pretrained_image=False, pretrained_text=False,
                               force_preprocess_cfg=preprocess or None, cache_dir=cache_dir, **(overrides or {}))
    except Exception as e:  # open_clip raises RuntimeError / ValueError / OSError / TypeError here
        raise ProbeError(f"open_clip:{label}: cannot build the model: {_one_line(e)}") from e
    finally:
        root.setLevel(level)


# -- the encoder -----------------------------------------------------------------------------
class OpenClipEncoder(LatentMap):
    """The image tower of an open_clip model; ``decode`` raises until a surrogate is fitted."""

    mean: Tensor  # buffers registered in __init__
    std: Tensor

    def __init__(self, model, arch: str, pretrained: str | None, *, latent: str = "sphere", keep_text: bool = True,
                 overrides: dict | None = None, stored_weights: bool | None = None):
        super().__init__()
        if latent not in LATENTS:
            raise ProbeError(f"latent must be one of {', '.join(LATENTS)}, got {latent!r}")
        if not hasattr(model, "visual"):
            raise ProbeError(f"expected an open_clip model with a .visual tower, got {type(model).__name__}")
        self.visual = model.visual
        self.clip = model if keep_text else None  # the text tower, for zero-shot labels
        self.requires_grad_(False)
        pp = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
        size = pp.get("size", getattr(model.visual, "image_size", 224))
        self.input_size = cast(tuple[int, int], (size, size) if isinstance(size, int) else tuple(int(s) for s in size))
        interp = pp.get("interpolation")  # open_clip's default is bicubic; torch resizes both with antialiasing
        self.interpolation = interp if interp in ("bicubic", "bilinear") else "bicubic"
        mean = pp.get("mean", getattr(model.visual, "image_mean", None)) or _open_clip().OPENAI_DATASET_MEAN
        std = pp.get("std", getattr(model.visual, "image_std", None)) or _open_clip().OPENAI_DATASET_STD
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.arch, self.pretrained, self.latent = arch, pretrained, latent
        self.overrides = dict(overrides or {})
        # Random-init and local-file encoders travel inside a saved surrogate; named tags do not.
        self.stored_weights = (pretrained is None or _is_path(pretrained)) if stored_weights is None else stored_weights
        self.embed_dim = int(getattr(self.visual, "output_dim", 0) or self._probe_dim())
        self.name = f"open_clip:{arch}/{pretrained or RANDOM}"

    def _probe_dim(self) -> int:
        with torch.no_grad():
            return int(self.visual(torch.zeros(1, 3, *self.input_size, device=self.device, dtype=self.dtype)).shape[-1])

    @property
    def spec(self) -> str:
        return self.name

    def preprocess(self, x: Tensor) -> Tensor:
        """[0, 1] images -> the model's input: centre crop to a square, resize, mean/std normalize."""
        from ..images import crop_square, resize  # the one home of image conversions

        x = resize(crop_square(x), self.input_size, self.interpolation)
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def embed(self, x: Tensor) -> Tensor:
        """The projected image embedding (no normalization); what CLIP's zero-shot compares."""
        out = self.visual(self.preprocess(x))
        return out[0] if isinstance(out, tuple) else out

    def _encode(self, x: Tensor) -> Tensor:
        z = self.embed(x)
        if self.latent == "sphere":
            z = F.normalize(z, dim=-1) * math.sqrt(z.shape[-1])
        return z

    def _decode(self, z: Tensor) -> Tensor:
        raise ProbeError(f"{self.name} is an encoder without a decoder, so f(z) = E(D(z)) does not exist: fit one with "
                         f"`probe fit-decoder {self.name} --images DATASET --out DIR` and load DIR")

    def latent_shape(self, resolution: int | None = None) -> tuple[int, ...]:
        return (self.embed_dim,)

    def tokenizer(self):
        """open_clip's tokenizer for this architecture, at the model's context length."""
        if self.clip is None:
            raise ProbeError(f"{self.name} was loaded without its text tower (keep_text=False); reload it with keep_text=True")
        try:
            return _open_clip().get_tokenizer(self.arch, context_length=getattr(self.clip, "context_length", None))
        except Exception as e:
            raise ProbeError(f"{self.name}: cannot build its tokenizer offline: {_one_line(e)}") from e

    def describe(self) -> dict:
        return {**super().describe(), "adapter": "open_clip", "arch": self.arch, "pretrained": self.pretrained,
                "latent": self.latent, "input_size": list(self.input_size), "embed_dim": self.embed_dim,
                "has_text": self.clip is not None}

    def reference(self) -> dict:
        """What a saved surrogate needs to rebuild this encoder."""
        return {"arch": self.arch, "pretrained": self.pretrained, "overrides": self.overrides, "latent": self.latent,
                "weights": ENCODER_WEIGHTS if self.stored_weights else None, "has_text": self.clip is not None,
                "preprocess": {"size": list(self.input_size), "mean": self.mean.flatten().tolist(),
                               "std": self.std.flatten().tolist(), "interpolation": self.interpolation}}

    def state_to_store(self) -> dict[str, Tensor]:
        return self.clip.state_dict() if self.clip is not None else {f"visual.{k}": v for k, v in self.visual.state_dict().items()}


def from_open_clip(model, arch: str, pretrained: str | None = None, *, latent: str = "sphere", keep_text: bool = True,
                   overrides: dict | None = None) -> OpenClipEncoder:
    """Wrap an open_clip model already in memory. To save a surrogate of it, ``arch`` and
    ``overrides`` must rebuild it: ``open_clip.create_model(arch, **overrides)``."""
    return OpenClipEncoder(model, arch, pretrained, latent=latent, keep_text=keep_text, overrides=overrides).eval()


def load_open_clip(tag: str, *, latent: str = "sphere", keep_text: bool = True, cache_dir: str | None = None,
                   model_cfg: dict | None = None, image_mean=None, image_std=None) -> OpenClipEncoder:
    """``open_clip:<arch>/<pretrained>`` -> :class:`OpenClipEncoder` (``probe.load`` dispatches here).

    ``model_cfg``: open_clip config fields to override (e.g. a tiny ``vision_cfg`` for tests);
    ``image_mean`` / ``image_std``: normalization for a checkpoint file trained with other values.
    """
    arch, pretrained = parse_tag(tag)
    value, preprocess = _resolve(arch, pretrained, cache_dir)
    preprocess = dict(preprocess or {})
    if image_mean is not None:
        preprocess["mean"] = tuple(image_mean)
    if image_std is not None:
        preprocess["std"] = tuple(image_std)
    model = _create(arch, value, model_cfg, preprocess, cache_dir, f"{arch}/{pretrained}")
    return from_open_clip(model, arch, None if pretrained == RANDOM else pretrained, latent=latent,
                          keep_text=keep_text, overrides=model_cfg)


# -- the surrogate autoencoder ---------------------------------------------------------------
class ClipSurrogateMap(LatentMap):
    """A frozen open_clip encoder E with a fitted surrogate decoder D: f(z) = E(D(z))."""

    encoder: OpenClipEncoder  # submodules set in __init__
    decoder: UpconvDecoder

    def __init__(self, encoder: OpenClipEncoder, decoder: UpconvDecoder, fit: dict | None = None):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.fit_info = dict(fit or {})
        self.name = f"{encoder.name}+surrogate{decoder.cfg.resolution}"

    @property
    def clip(self):
        return self.encoder.clip

    def tokenizer(self):
        return self.encoder.tokenizer()

    def default_resolution(self) -> int:
        return self.decoder.cfg.resolution

    def _encode(self, x: Tensor) -> Tensor:
        return self.encoder._encode(x)

    def _decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)

    def latent_shape(self, resolution: int | None = None) -> tuple[int, ...]:
        return self.encoder.latent_shape()

    def describe(self) -> dict:
        return {**super().describe(), "adapter": "clip_surrogate", "encoder": self.encoder.describe(),
                "decoder": asdict(self.decoder.cfg)}

    def save(self, folder: str | Path, **extra) -> Path:
        """``probe_map.json`` + ``decoder.safetensors`` (+ ``encoder.safetensors`` for random/local encoders)."""
        folder = Path(folder)
        ref = self.encoder.reference()
        if ref["weights"]:
            save_tensors(folder / ENCODER_WEIGHTS, self.encoder.state_to_store())
        save_tensors(folder / DECODER_WEIGHTS, self.decoder.state_dict())
        save_json(folder / MANIFEST, {"adapter": "clip_surrogate", "name": self.name, "encoder": ref,
                                      "decoder": asdict(self.decoder.cfg), "weights": DECODER_WEIGHTS,
                                      "map": self.describe(), **self.fit_info, **extra})
        return folder


def fit_surrogate(encoder: OpenClipEncoder, images, cfg: FitConfig, log=None) -> ClipSurrogateMap:
    """Fit a surrogate decoder to the frozen ``encoder`` on ``images`` (an ImageSet or images
    [N, C, H, W], uint8 or float in [0, 1])."""
    from ..data import ImageSet
    from ..data.imageset import as_nchw

    if isinstance(encoder, ClipSurrogateMap):
        encoder = encoder.encoder
    if not isinstance(encoder, OpenClipEncoder):
        raise ProbeError(f"fit-decoder needs an open_clip encoder (open_clip:<arch>/<pretrained>), got {type(encoder).__name__}")
    if not isinstance(images, ImageSet):
        images = ImageSet(as_nchw(images))
    if len(images) < 2:
        raise ProbeError(f"need at least 2 images to fit a decoder, got {len(images)}")
    targets = images.to_channels(3).resize(cfg.resolution)
    encoder = encoder.to(cfg.device).eval()
    # Fit in float32 whatever the encoder's dtype; gradients pass through the casts.
    fit = fit_decoder(lambda x: encoder._encode(x.to(encoder.dtype)).float(), targets.images, cfg, log=log)
    info = {"fit": asdict(cfg), "history": fit.history, "n_train": fit.n_train, "n_val": fit.n_val,
            "images": {"name": images.name, "source": images.source, "split": images.split, "n": len(images),
                       "ops": [*targets.ops]}}
    return ClipSurrogateMap(encoder, fit.decoder.to(encoder.dtype), info).eval()


def load_saved(folder: str | Path, meta: dict | None = None, *, encoder_weights: str | None = None,
               cache_dir: str | None = None, keep_text: bool = True) -> ClipSurrogateMap:
    """A folder written by :meth:`ClipSurrogateMap.save` (``probe.load`` dispatches here).

    ``encoder_weights``: a local checkpoint for an encoder saved by tag (offline reloads).
    """
    folder = Path(folder)
    manifest: dict = meta if meta is not None else load_json(folder / MANIFEST)
    try:
        ref, dcfg = manifest["encoder"], DecoderConfig(**manifest["decoder"])
        arch, pretrained, pp = ref["arch"], ref.get("pretrained"), ref.get("preprocess") or {}
    except (KeyError, TypeError, ValueError) as e:
        raise ProbeError(f"{folder / MANIFEST}: bad clip_surrogate manifest ({e})") from e
    preprocess = {k: pp[k] for k in ("mean", "std", "interpolation") if k in pp}
    label = f"{arch}/{pretrained or RANDOM}"
    stored = ref.get("weights")
    if stored:
        model = _create(arch, None, ref.get("overrides"), preprocess, cache_dir, label)
        state = load_tensors(folder / stored)
        has_text = any(not k.startswith("visual.") for k in state)
        try:
            model.load_state_dict(state, strict=has_text)
        except RuntimeError as e:
            raise ProbeError(f"{folder / stored}: encoder weights do not match open_clip {arch} with the saved overrides "
                             f"({_one_line(e)})") from e
        keep_text = keep_text and has_text
    else:
        value = str(Path(encoder_weights).expanduser()) if encoder_weights else _resolve(arch, pretrained, cache_dir)[0]
        model = _create(arch, value, ref.get("overrides"), preprocess, cache_dir, label)
    encoder = OpenClipEncoder(model, arch, pretrained, latent=ref.get("latent", "sphere"), keep_text=keep_text,
                              overrides=ref.get("overrides"), stored_weights=bool(stored))
    decoder = UpconvDecoder(dcfg)
    try:
        decoder.load_state_dict(load_tensors(folder / manifest.get("weights", DECODER_WEIGHTS)))
    except RuntimeError as e:
        raise ProbeError(f"{folder}: decoder weights do not match its config ({_one_line(e)})") from e
    fit = {k: manifest[k] for k in ("fit", "history", "n_train", "n_val", "images") if k in manifest}
    return ClipSurrogateMap(encoder, decoder.to(encoder.dtype), fit).eval()
