"""Tiny AutoEncoders (TAESD family) in their original ``<name>_encoder.pth`` /
``<name>_decoder.pth`` format, rebuilt here from the state-dict layout.

Both halves are one ``nn.Sequential`` (so the state-dict keys are plain indices):

    encoder  conv, Block, [stride-2 conv, Block x3] x3, conv -> C latent channels
    decoder  3*tanh(z/3), conv, ReLU, [Block x3, upsample x2, conv] x3, Block, conv -> RGB

Images are in [0, 1] on both sides (no [-1, 1] rescaling: measured on the real TAEF2
weights, [0, 1] gives 24 dB on the sample photo, [-1, 1] gives 18 dB). Latents are
the encoder's own output, i.e. what the matching diffusion model works with
(already scaled for taesd/taesdxl; raw VAE latents for taesd3/taef1/taef2).
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import ProbeError
from .base import LatentMap

#: variant -> (latent channels, pooled branch in the middle-resolution blocks)
VARIANTS = {
    "taesd": (4, False),
    "taesdxl": (4, False),
    "taesd3": (16, False),
    "taef1": (16, False),
    "taef2": (32, True),
}
SUFFIXES = (".pth", ".safetensors")


def _conv(n_in: int, n_out: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, stride=stride, padding=1, bias=bias)


class Clamp(nn.Module):
    """Soft clamp 3*tanh(z/3): keeps decoder inputs in (-3, 3) while staying smooth."""

    def forward(self, z: Tensor) -> Tensor:
        return torch.tanh(z / 3) * 3


class Block(nn.Module):
    """Residual block conv-ReLU-conv-ReLU-conv + skip, then ReLU.

    ``pooled=True`` (TAEF2 middle resolution) adds a 1x1 conv -> GroupNorm(4) -> ReLU
    -> 1x1 conv branch to the input first. GroupNorm's per-image statistics make it a
    global (pooled) signal. Adding it before the residual path reproduced the weights
    best: 24.0 dB on china.jpg vs 23.8 dB when added next to the skip.
    """

    def __init__(self, n: int, pooled: bool = False):
        super().__init__()
        self.conv = nn.Sequential(_conv(n, n), nn.ReLU(), _conv(n, n), nn.ReLU(), _conv(n, n))
        self.skip = nn.Identity()
        self.fuse = nn.ReLU()
        self.pool = None
        if pooled:
            self.pool = nn.Sequential(nn.Conv2d(n, 4 * n, 1, bias=False), nn.GroupNorm(4, 4 * n), nn.ReLU(),
                                      nn.Conv2d(4 * n, n, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + self.skip(x))


def build_encoder(latent_channels: int, pooled: bool = False, width: int = 64) -> nn.Sequential:
    w = width
    layers: list[nn.Module] = [_conv(3, w), Block(w)]
    for level in range(3):
        mid = pooled and level == 2  # the lowest (1/8) resolution is the "middle" of the U
        layers += [_conv(w, w, stride=2, bias=False), Block(w, mid), Block(w, mid), Block(w, mid)]
    return nn.Sequential(*layers, _conv(w, latent_channels))


def build_decoder(latent_channels: int, pooled: bool = False, width: int = 64) -> nn.Sequential:
    w = width
    layers: list[nn.Module] = [Clamp(), _conv(latent_channels, w), nn.ReLU()]
    for level in range(3):
        mid = pooled and level == 0
        layers += [Block(w, mid), Block(w, mid), Block(w, mid), nn.Upsample(scale_factor=2), _conv(w, w, bias=False)]
    return nn.Sequential(*layers, Block(w), _conv(w, 3))


class TAESDMap(LatentMap):
    """A TAESD-family tiny autoencoder as a latent map (latents C x H/8 x W/8)."""

    downsample = 8
    field_defaults = {"tol": 1e-5, "max_steps": 500}  # foundation-model setting (METHOD.md section 1)

    def __init__(self, variant: str | None = None, latent_channels: int | None = None, pooled: bool | None = None,
                 width: int = 64, source: str = ""):
        super().__init__()
        if variant is not None and variant not in VARIANTS:
            raise ProbeError(f"unknown TAESD variant {variant!r}; known: {', '.join(VARIANTS)}")
        c, p = VARIANTS[variant] if variant is not None else (4, False)
        self.variant = variant
        self.latent_channels = latent_channels or c
        self.pooled = p if pooled is None else pooled
        self.encoder = build_encoder(self.latent_channels, self.pooled, width)
        self.decoder = build_decoder(self.latent_channels, self.pooled, width)
        self.source = source
        self.name = f"{variant or 'taesd-like'} ({source})" if source else (variant or "taesd-like")

    def _encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def _decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)

    def latent_shape(self, resolution: int | None = None) -> tuple[int, ...]:
        r = resolution or self.default_resolution()
        if r % 8:
            raise ProbeError(f"TAESD needs a resolution that is a multiple of 8, got {r}")
        return (self.latent_channels, r // 8, r // 8)

    def describe(self) -> dict:
        return {**super().describe(), "variant": self.variant, "source": self.source,
                "latent_channels": self.latent_channels, "downsample": self.downsample}


# -- files -------------------------------------------------------------------
def find_taesd_pairs(folder: str | Path) -> list[tuple[Path, Path]]:
    """Every ``<name>_encoder.{pth,safetensors}`` in ``folder`` that has a matching decoder."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pairs = []
    for enc in sorted(folder.iterdir()):
        m = re.fullmatch(r"(.+)_encoder(\.pth|\.safetensors)", enc.name)
        if not m:
            continue
        for suffix in (m.group(2), *SUFFIXES):  # prefer the same format for both halves
            dec = folder / f"{m.group(1)}_decoder{suffix}"
            if dec.is_file():
                pairs.append((enc, dec))
                break
    return pairs


def find_taesd_pair(folder: str | Path) -> tuple[Path, Path] | None:
    """``(encoder_path, decoder_path)`` of the first TAESD pair in ``folder``, or None."""
    pairs = find_taesd_pairs(folder)
    return pairs[0] if pairs else None


def _prefix(path: Path) -> str:
    return re.sub(r"_(encoder|decoder)$", "", path.stem)


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise ProbeError(f"no such TAESD checkpoint: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt or foreign file: one line, not a pickle traceback
        raise ProbeError(f"cannot read TAESD checkpoint {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, Tensor) for v in sd.values()):
        raise ProbeError(f"{path} is not a state dict of tensors")
    return sd


def _layout(sd: dict[str, Tensor], path: Path, half: str) -> tuple[int, bool, int]:
    """(latent channels, pooled, width) read from the state-dict shapes."""
    if not any(k.split(".")[0].isdigit() for k in sd) or "1.weight" not in sd and half == "decoder":
        keys = ", ".join(sorted(sd)[:3]) + (", ..." if len(sd) > 3 else "")
        raise ProbeError(f"{path.name} is named like a TAESD {half} but its keys ({keys or 'none'}) are not the "
                         f"TAESD layout (0.weight, 1.conv.0.weight, ...); load your model with FILE.py:factory")
    try:
        if half == "encoder":
            last = max(int(k.split(".")[0]) for k in sd if k.split(".")[0].isdigit())
            c, w = sd[f"{last}.weight"].shape[0], sd["0.weight"].shape[0]
        else:
            c, w = sd["1.weight"].shape[1], sd["1.weight"].shape[0]
    except (KeyError, ValueError) as e:
        raise ProbeError(f"{path} does not look like a TAESD {half} (missing key {e})") from e
    return int(c), any(".pool." in k for k in sd), int(w)


def load_taesd(folder_or_files: str | Path | tuple[str | Path, str | Path], variant: str | None = None,
               sample: bool = False, device: str | None = None, dtype: torch.dtype | None = None, **opts) -> TAESDMap:
    """Load a TAESD pair from a folder or an ``(encoder, decoder)`` pair of files.

    The variant comes from ``variant``, else the file-name prefix, else the shapes;
    an encoder and decoder that do not belong together raise a one-line ProbeError.
    """
    if sample:
        raise ProbeError("TAESD encoders are deterministic: sample=True does not apply")
    if opts:
        raise ProbeError(f"TAESD loading takes no option(s) {', '.join(sorted(opts))}; it takes variant=<name>")
    if isinstance(folder_or_files, (tuple, list)):
        if len(folder_or_files) != 2:
            raise ProbeError("give a folder or an (encoder, decoder) pair of files")
        enc_path, dec_path = (Path(p) for p in folder_or_files)
    else:
        folder = Path(folder_or_files)
        pairs = find_taesd_pairs(folder)
        if variant is not None:
            pairs = [p for p in pairs if _prefix(p[0]) == variant] or pairs
        if not pairs:
            raise ProbeError(f"{folder} holds no TAESD pair (<name>_encoder.pth + <name>_decoder.pth)")
        if len(pairs) > 1:
            names = ", ".join(_prefix(p[0]) for p in pairs)
            raise ProbeError(f"{folder} holds several TAESD pairs ({names}); choose one with variant=<name>")
        enc_path, dec_path = pairs[0]
    enc_name, dec_name = _prefix(enc_path), _prefix(dec_path)
    if enc_name != dec_name:
        raise ProbeError(f"mismatched TAESD pair: encoder {enc_path.name} and decoder {dec_path.name} are different models")
    enc_sd, dec_sd = _read_state_dict(enc_path), _read_state_dict(dec_path)
    (ce, pe, we), (cd, pd, wd) = _layout(enc_sd, enc_path, "encoder"), _layout(dec_sd, dec_path, "decoder")
    if (ce, pe, we) != (cd, pd, wd):
        raise ProbeError(f"mismatched TAESD pair: encoder {enc_path.name} gives {ce} latent channels, decoder "
                         f"{dec_path.name} takes {cd}" + ("" if ce != cd else " (different block layout)"))
    if variant is None and enc_name in VARIANTS:
        variant = enc_name
    if variant is not None:
        if variant not in VARIANTS:
            raise ProbeError(f"unknown TAESD variant {variant!r}; known: {', '.join(VARIANTS)}")
        if VARIANTS[variant] != (ce, pe):
            raise ProbeError(f"{enc_path.name} has {ce} latent channels{' with pooled blocks' if pe else ''}, "
                             f"not the layout of {variant} ({VARIANTS[variant][0]} channels)")
    m = TAESDMap(variant, ce, pe, we, source=str(enc_path.parent))
    for module, sd, path in ((m.encoder, enc_sd, enc_path), (m.decoder, dec_sd, dec_path)):
        try:
            module.load_state_dict({k: v.float() for k, v in sd.items()})
        except RuntimeError as e:
            first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
            raise ProbeError(f"{path} does not fit the TAESD layout: {first}") from e
    if device is not None or dtype is not None:
        m = m.to(device=device, dtype=dtype)
    return m.eval()
