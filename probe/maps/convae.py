"""The paper's conv autoencoder family (METHOD.md section 3) as a :class:`LatentMap`.

Encoder: four 3x3 stride-2 convs C -> d -> 2d -> 4d -> 8d, flatten, linear to the
bottleneck k. Decoder: the mirror (linear, four 3x3 stride-2 transposed convs) and a
sigmoid so decoded images live in [0, 1] like the inputs.

A trained model saves as a folder ``probe.load`` understands::

    probe_map.json      {"adapter": "convae", "config": {...}, "weights": "model.safetensors", ...}
    model.safetensors   the state dict
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from ..config import field, require_positive
from ..errors import ConfigError, ProbeError
from ..io import load_json, load_tensors, save_json, save_tensors
from .base import LatentMap

WEIGHTS = "model.safetensors"
MANIFEST = "probe_map.json"
CHANNELS = (1, 3)  #: grayscale or RGB
#: The paper's optimiser for this family (METHOD.md section 3): Adam with plain L2 weight decay
#: (not AdamW). ``probe train`` trains with it; surrogate decoders (``probe fit-decoder``) borrow it.
PAPER_ADAM = {"lr": (5e-4, "Adam learning rate (paper: 5e-4)"),
              "weight_decay": (1e-4, "Adam L2 weight decay (paper: 1e-4)")}


def paper_adam(name: str, note: str = "") -> Any:
    """The config field of the paper's Adam setting ``name`` (``lr`` or ``weight_decay``): the paper's
    value as its default, its help saying so and then ``note``."""
    default, help = PAPER_ADAM[name]
    return field(default, help + note)


@dataclass(frozen=True)
class ConvAEConfig:
    """Shape of one member of the family; the paper sweeps ``bottleneck`` from 2 to 512."""

    image_size: int = field(28, "input height = width in pixels (28 for MNIST / Fashion-MNIST, 32 for CIFAR-10)")
    image_channels: int = field(1, "input channels: 1 grayscale, 3 RGB", choices=CHANNELS)
    width: int = field(32, "d: channels of the first conv; the encoder uses d, 2d, 4d, 8d")
    bottleneck: int = field(16, "k: size of the latent vector (the paper sweeps 2..512)")

    def __post_init__(self):
        require_positive(self, ("image_size", "width", "bottleneck"))
        if self.image_channels not in CHANNELS:
            raise ConfigError(f"image_channels must be 1 or 3, got {self.image_channels}")


def _sizes(size: int) -> list[int]:
    """Spatial size after each stride-2 conv with padding 1: ceil(s / 2)."""
    out = [size]
    for _ in range(4):
        out.append((out[-1] + 1) // 2)
    return out


class ConvAE(LatentMap):
    """One conv autoencoder of the paper's family; ``f(z) = E(D(z))`` on vectors of size k."""

    # METHOD.md section 1: small conv autoencoders iterate to tol 1e-6 within 3000 steps.
    field_defaults = {"tol": 1e-6, "max_steps": 3000}

    def __init__(self, config: ConvAEConfig | None = None, name: str | None = None, **kw):
        super().__init__()
        cfg = config or ConvAEConfig(**kw)
        self.config = cfg
        self.image_size, self.image_channels = cfg.image_size, cfg.image_channels
        self.name = name or f"convae(k={cfg.bottleneck}, d={cfg.width}, {cfg.image_channels}x{cfg.image_size}px)"
        d, c = cfg.width, cfg.image_channels
        chans = [c, d, 2 * d, 4 * d, 8 * d]
        sizes = _sizes(cfg.image_size)
        self._flat = (chans[-1], sizes[-1], sizes[-1])
        n_flat = chans[-1] * sizes[-1] ** 2

        enc: list[nn.Module] = []
        for i in range(4):
            enc += [nn.Conv2d(chans[i], chans[i + 1], 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
        self.encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(n_flat, cfg.bottleneck))

        dec: list[nn.Module] = [nn.Linear(cfg.bottleneck, n_flat), nn.Unflatten(1, self._flat), nn.LeakyReLU(0.2)]
        for i in range(4, 0, -1):
            # output_padding makes each transposed conv land exactly on the encoder's size
            # (28 -> 14 -> 7 -> 4 -> 2 needs 0 at 4 -> 7 and 1 elsewhere).
            pad = sizes[i - 1] - (2 * sizes[i] - 1)
            dec.append(nn.ConvTranspose2d(chans[i], chans[i - 1], 3, stride=2, padding=1, output_padding=pad))
            dec.append(nn.LeakyReLU(0.2) if i > 1 else nn.Sigmoid())
        self.decoder = nn.Sequential(*dec)
        self._init_weights()

    def _init_weights(self) -> None:
        # PyTorch's default init shrinks the signal through ten LeakyReLU layers, and training
        # then sits at the mean image for epochs; He init (gain for LeakyReLU 0.2) starts it moving.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                mode = "fan_out" if isinstance(m, nn.ConvTranspose2d) else "fan_in"
                nn.init.kaiming_normal_(m.weight, a=0.2, mode=mode, nonlinearity="leaky_relu")
                if m.bias is not None:  # every layer here has a bias
                    nn.init.zeros_(m.bias)

    def _encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def _decode(self, z: Tensor) -> Tensor:
        if z.shape[1:] != (self.config.bottleneck,):
            raise ProbeError(f"{self.name} takes latents of shape [B, {self.config.bottleneck}], got {tuple(z.shape)}")
        return self.decoder(z)

    def latent_shape(self, resolution: int | None = None) -> tuple[int, ...]:
        return (self.config.bottleneck,)

    def reconstruct(self, x: Tensor) -> Tensor:
        """D(E(x)) for training: no range checks, keeps the graph."""
        return self.decoder(self.encoder(x))

    def describe(self) -> dict:
        return {**super().describe(), "adapter": "convae", "config": vars(self.config).copy()}

    def save(self, folder: str | Path, **extra) -> Path:
        """Write ``probe_map.json`` + ``model.safetensors``; ``extra`` lands in the manifest (e.g. training facts)."""
        folder = Path(folder)
        save_tensors(folder / WEIGHTS, self.state_dict())
        save_json(folder / MANIFEST, {"adapter": "convae", "config": vars(self.config).copy(), "weights": WEIGHTS,
                                      "name": self.name, **extra})
        return folder


def load_saved(folder: str | Path, meta: dict | None = None, **opts) -> ConvAE:
    """Load a folder written by :meth:`ConvAE.save` (``probe.load`` dispatches here)."""
    folder = Path(folder)
    manifest: dict = meta if meta is not None else load_json(folder / MANIFEST)
    if opts:
        raise ProbeError(f"convae models take no load options, got {', '.join(sorted(opts))}")
    try:
        cfg = ConvAEConfig(**manifest["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise ProbeError(f"{folder / MANIFEST}: bad convae config ({e})") from e
    model = ConvAE(cfg, name=manifest.get("name") or f"convae:{folder.name}")
    state = load_tensors(folder / manifest.get("weights", WEIGHTS))
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise ProbeError(f"{folder}: weights do not match its config ({first})") from e
    return model.eval()
