"""Surrogate decoders: an image decoder fitted to a *frozen* encoder (METHOD.md section 6).

Discriminative and self-supervised encoders (CLIP, DINO) have no decoder, so f(z) = E(D(z))
does not exist for them. Fitting a decoder D to the frozen E gives one: the field is then a
property of E *and* the surrogate, which is why every saved surrogate records how it was fit.

Nothing here knows about open_clip: :func:`fit_decoder` takes any ``encode`` callable (images
[B, 3, H, W] in [0, 1] -> latents [B, d]), so the same loop serves any frozen image encoder.

Choices, and why:

- The targets are the training images resized to the decoder's resolution, and the cached
  latents are E of *those* images (not of the originals). f encodes the decoder's output at
  that resolution, so a perfect D gives D(E(x)) = x and f(E(x)) = E(x) exactly: the field is
  not biased by a resolution gap between what E saw in training and what it sees in f.
- The encoder runs once over the data (latents cached); the reconstruction loss then costs
  only decoder passes. The optional consistency loss lambda * ||E(D(z)) - z||^2 / ||z||^2
  back-propagates through the frozen encoder every step, so it costs encoder passes too.
- The decoder ends in a sigmoid: decoded images are always valid images in [0, 1], so f is
  defined everywhere the decoder is.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import field, require_positive
from ..errors import ConfigError, ProbeError
from .convae import paper_adam


@dataclass(frozen=True)
class DecoderConfig:
    """Architecture of an :class:`UpconvDecoder`; saved beside its weights."""

    latent_dim: int = field(512, "d: size of the embedding the decoder reads")
    resolution: int = field(64, "side of the decoded images in px: 4 * 2^k (8, 16, 32, 64, 128, 256)")
    width: int = field(32, "channels at full resolution; doubled at each coarser level, at most 8x")
    channels: int = field(3, "image channels (3 = RGB)")

    def __post_init__(self):
        require_positive(self, ("latent_dim", "width", "channels"))
        r = int(self.resolution)
        if r < 8 or r % 4 or (r // 4) & (r // 4 - 1):
            raise ConfigError(f"resolution must be 4 * 2^k with k >= 1 (8, 16, 32, 64, 128, 256), got {r}")

    @property
    def widths(self) -> list[int]:
        """Channels at 4 px, 8 px, ..., resolution px."""
        levels = int(math.log2(self.resolution // 4))
        return [self.width * min(2 ** (levels - i), 8) for i in range(levels + 1)]


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, c), c)


class UpconvDecoder(nn.Module):
    """Embedding [B, d] -> image [B, C, r, r] in [0, 1].

    A linear stem to a 4 x 4 map, then per level: nearest 2x upsampling, 3x3 conv, GroupNorm,
    SiLU (nearest + conv rather than transposed convs: no checkerboard artefacts), and a 3x3
    conv head with a sigmoid.
    """

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.widths
        self.stem = nn.Linear(cfg.latent_dim, w[0] * 16)
        self.stem_norm = _norm(w[0])
        layers: list[nn.Module] = []
        for a, b in zip(w[:-1], w[1:], strict=True):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(a, b, 3, padding=1), _norm(b), nn.SiLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(w[-1], cfg.channels, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        if z.dim() != 2 or z.shape[1] != self.cfg.latent_dim:
            raise ProbeError(f"decoder takes latents [B, {self.cfg.latent_dim}], got shape {tuple(z.shape)}")
        h = F.silu(self.stem_norm(self.stem(z).view(len(z), -1, 4, 4)))
        return torch.sigmoid(self.head(self.body(h)))


@dataclass(frozen=True)
class FitConfig:
    """Fitting a surrogate decoder to a frozen encoder (``probe fit-decoder``).

    The paper fits no surrogate (it lists them as future work); the optimizer settings are the
    ones it uses for its conv autoencoders (Adam, lr 5e-4, weight decay 1e-4).
    """

    section = "fit_decoder"

    images: str = field("cifar10", "training images: a probe.data.load_images spec (cifar10, imagenet1k-500, a folder...)")
    split: str = field("train", "split of the image set")
    n_images: int | None = field(None, "use a seeded random subset of this many images (None = all)")
    resolution: int = field(64, "decoded image size in px: 4 * 2^k")
    width: int = field(32, "decoder channels at full resolution (doubled per coarser level, at most 8x)")
    epochs: int = field(20, "passes over the training images")
    batch_size: int = field(64, "images per step")
    lr: float = paper_adam("lr", ", cosine-annealed to 0")
    weight_decay: float = paper_adam("weight_decay")
    consistency: float = field(0.0, "weight of the embedding-consistency loss ||E(D(z)) - z||^2 / ||z||^2 "
                                    "(0 = reconstruction MSE only; > 0 back-propagates through the frozen encoder)")
    val_fraction: float = field(0.1, "held-out fraction of the images for validation PSNR and field residual")
    seed: int = field(0, "seed for the subset, the split, initialisation and batch order")
    device: str = field("cpu", "cpu or cuda[:i]")

    def __post_init__(self):
        require_positive(self, ("resolution", "width", "epochs", "batch_size"))
        if self.n_images is not None and self.n_images < 2:
            raise ConfigError(f"n_images must be >= 2, got {self.n_images}")
        if self.lr <= 0 or self.weight_decay < 0 or self.consistency < 0:
            raise ConfigError("lr must be > 0, weight_decay and consistency >= 0")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        DecoderConfig(resolution=self.resolution, width=self.width)  # validates the resolution


@dataclass
class SurrogateFit:
    """A fitted decoder and how it got there (one dict per epoch in ``history``)."""

    decoder: UpconvDecoder
    history: list[dict]
    n_train: int
    n_val: int

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}


def psnr(x: Tensor, y: Tensor) -> Tensor:
    """Per-image PSNR in dB for images in [0, 1] (peak 1)."""
    mse = (x.float() - y.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-12))


def _relative_residual(z_next: Tensor, z: Tensor) -> Tensor:
    """||f(z) - z||^2 / ||z||^2 per latent: the consistency loss and the field's size at data."""
    return (z_next - z).pow(2).sum(1) / z.pow(2).sum(1).clamp_min(1e-12)


@torch.no_grad()
def encode_all(encode: Callable[[Tensor], Tensor], images: Tensor, batch_size: int, device) -> Tensor:
    """Latents of uint8 (or float [0, 1]) images, in batches, cached on the CPU as float32."""
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].to(device)
        x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
        out.append(encode(x).float().cpu())
    return torch.cat(out)


def fit_decoder(encode: Callable[[Tensor], Tensor], targets: Tensor, cfg: FitConfig,
                latents: Tensor | None = None, log: Callable[[str], None] | None = None) -> SurrogateFit:
    """Fit an :class:`UpconvDecoder` so that D(E(x)) = x for the frozen ``encode``.

    ``targets``: images [N, 3, r, r] at ``cfg.resolution`` (uint8, or float in [0, 1]).
    ``encode``: images on ``cfg.device`` -> latents [B, d]; its parameters must be frozen
    (gradients only flow through it to the decoder, for the consistency loss).
    ``latents``: E(targets) if already computed (else encoded here, once).
    """
    if targets.dim() != 4 or targets.shape[1] != 3 or tuple(targets.shape[-2:]) != (cfg.resolution,) * 2:
        raise ProbeError(f"targets must be [N, 3, {cfg.resolution}, {cfg.resolution}], got {tuple(targets.shape)}")
    n = len(targets)
    n_val = int(round(n * cfg.val_fraction))
    if n - n_val < 1:
        raise ProbeError(f"{n} images leave none to train on with val_fraction={cfg.val_fraction}")
    device = torch.device(cfg.device)
    if latents is None:
        latents = encode_all(encode, targets, cfg.batch_size, device)
    if latents.dim() != 2 or len(latents) != n:
        raise ProbeError(f"latents must be [{n}, d], got {tuple(latents.shape)}")
    g = torch.Generator().manual_seed(cfg.seed)
    perm = torch.randperm(n, generator=g)
    val, train = perm[:n_val], perm[n_val:]

    with torch.random.fork_rng(devices=[]):  # seeded initialisation without touching the caller's RNG
        torch.manual_seed(cfg.seed)
        decoder = UpconvDecoder(DecoderConfig(latent_dim=latents.shape[1], resolution=cfg.resolution,
                                              width=cfg.width)).to(device)
    opt = torch.optim.Adam(decoder.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * math.ceil(len(train) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))

    def batch(idx):
        x = targets[idx].to(device)
        return (x.float().div_(255) if x.dtype == torch.uint8 else x.float()), latents[idx].to(device)

    history = []
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        decoder.train()
        order = train[torch.randperm(len(train), generator=g)]
        sums = {"mse": 0.0, "consistency": 0.0}
        for i in range(0, len(order), cfg.batch_size):
            x, z = batch(order[i:i + cfg.batch_size])
            x_hat = decoder(z)
            mse = F.mse_loss(x_hat, x)
            loss = mse
            if cfg.consistency > 0:
                cons = _relative_residual(encode(x_hat), z).mean()
                loss = loss + cfg.consistency * cons
                sums["consistency"] += float(cons.detach()) * len(z)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            sums["mse"] += float(mse.detach()) * len(z)
        row = {"epoch": epoch, "train_mse": sums["mse"] / len(train)}
        if cfg.consistency > 0:
            row["train_consistency"] = sums["consistency"] / len(train)
        row.update(evaluate(decoder, encode, targets[val], latents[val], cfg.batch_size, device) if n_val else {})
        row["seconds"] = round(time.perf_counter() - t0, 2)
        history.append(row)
        if log:
            log(" ".join(f"{k} {v:.5g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    decoder.eval()
    return SurrogateFit(decoder=decoder, history=history, n_train=len(train), n_val=n_val)


@torch.no_grad()
def evaluate(decoder: nn.Module, encode: Callable[[Tensor], Tensor], targets: Tensor, latents: Tensor,
             batch_size: int, device) -> dict:
    """Held-out reconstruction (MSE, mean per-image PSNR) and the field's size at data.

    ``val_residual`` is the mean of ||f(z) - z||^2 / ||z||^2 at held-out latents z = E(x): zero
    when every data latent is a fixed point of f = E o D.
    """
    was_training = decoder.training
    decoder.eval()
    mse, db, res = [], [], []
    for i in range(0, len(targets), batch_size):
        x = targets[i:i + batch_size].to(device)
        x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
        z = latents[i:i + batch_size].to(device)
        x_hat = decoder(z)
        mse.append((x_hat - x).pow(2).flatten(1).mean(1).cpu())
        db.append(psnr(x_hat, x).cpu())
        res.append(_relative_residual(encode(x_hat).float(), z).cpu())
    decoder.train(was_training)
    return {"val_mse": float(torch.cat(mse).mean()), "val_psnr": float(torch.cat(db).mean()),
            "val_residual": float(torch.cat(res).mean())}
