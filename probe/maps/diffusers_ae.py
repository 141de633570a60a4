"""Any diffusers autoencoder (``AutoencoderKL``, ``AutoencoderTiny``, ``AutoencoderDC``,
``AsymmetricAutoencoderKL``, ``ConsistencyDecoderVAE``, ``VQModel``, ...) as a latent map.

The class is picked by name from ``config.json``'s ``_class_name``: there is no list of
supported models. Latents are the *diffusion latents* a pipeline hands its denoiser:

    z = (E_raw(2x - 1) - shift) * scale        x = (D_raw(z / scale + shift) + 1) / 2

with ``scale = scaling_factor`` and ``shift = shift_factor`` (0 when absent), or the
per-channel ``latents_mean`` / ``latents_std`` when the config has them (SDXL-style
pipelines: scale = scaling_factor / std). ``AutoencoderTiny`` follows the same rule:
its ``encode``/``decode`` already take and give diffusers' [-1, 1] images, and its
``latent_magnitude``/``latent_shift`` only serve ``scale_latents``, the uint8 storage
format, so they do not enter the map. For a VAE, E is the posterior mean unless
``sample=True``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import ProbeError
from .base import LatentMap

#: diffusers classes that are autoencoders without "Autoencoder" in their name.
EXTRA_CLASSES = ("ConsistencyDecoderVAE", "VQModel")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _read_config(folder: Path) -> dict:
    try:
        return json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ProbeError(f"cannot read {folder / 'config.json'}: {_first_line(e)}") from e


def autoencoder_folder(folder: Path, subfolder: str | None = None) -> Path:
    """The folder that holds the autoencoder itself: ``folder`` or a pipeline's ``vae/``."""
    if subfolder:
        folder = folder / subfolder
        if not (folder / "config.json").is_file():
            raise ProbeError(f"no config.json in {folder}")
        return folder
    if (folder / "config.json").is_file() and "_class_name" in _read_config(folder):
        return folder
    index = folder / "model_index.json"
    if index.is_file():  # a pipeline: pick the component whose class is an autoencoder
        try:
            components = json.loads(index.read_text())
        except json.JSONDecodeError as e:
            raise ProbeError(f"{index} is not valid JSON: {e}") from e
        for name, spec in components.items():
            if isinstance(spec, list) and len(spec) == 2 and _is_autoencoder_name(str(spec[1])) \
                    and (folder / name / "config.json").is_file():
                return folder / name
    if (folder / "vae" / "config.json").is_file():
        return folder / "vae"
    raise ProbeError(f"{folder} holds no diffusers autoencoder (config.json with _class_name, or vae/config.json)")


def _is_autoencoder_name(name: str) -> bool:
    return name.startswith(("Autoencoder", "AsymmetricAutoencoder")) or name in EXTRA_CLASSES


def autoencoder_class(name: str):
    """The diffusers class called ``name``, if it is an autoencoder."""
    import diffusers

    cls = getattr(diffusers, name, None) if _is_autoencoder_name(name) else None
    if cls is None or not (hasattr(cls, "encode") and hasattr(cls, "decode")):
        raise ProbeError(f"config.json names class {name!r}, which is not a diffusers autoencoder "
                         f"(expected Autoencoder*, {', '.join(EXTRA_CLASSES)}; diffusers {diffusers.__version__})")
    return cls


class DiffusersMap(LatentMap):
    """A diffusers autoencoder; images [0, 1] at the boundary, diffusion latents inside."""

    field_defaults = {"tol": 1e-5, "max_steps": 500}  # foundation-model setting (METHOD.md section 1)
    model: Any  # a diffusers autoencoder: .config, .encode(), .decode()
    shift: Tensor  # buffers registered in __init__
    scale: Tensor

    def __init__(self, model: torch.nn.Module, source: str = "", sample: bool = False):
        super().__init__()
        self.model = model
        self.source = source
        self.sample = bool(sample)
        cfg: dict[str, Any] = dict(self.model.config)
        self.ae_config = cfg
        self.image_channels = int(cfg.get("in_channels", cfg.get("encoder_in_channels", 3)) or 3)
        self.name = f"{type(model).__name__} ({source})" if source else type(model).__name__
        # Video-style autoencoders (Conv3d) take [B, C, T, H, W]: an image is one frame.
        self.frames = any(isinstance(m, torch.nn.Conv3d) for m in model.modules())
        scale = float(cfg.get("scaling_factor") or 1.0)
        mean, std = cfg.get("latents_mean"), cfg.get("latents_std")
        if mean is not None and std is not None:
            shift_t = torch.tensor(mean, dtype=torch.float32)
            scale_t = scale / torch.tensor(std, dtype=torch.float32)
        else:
            shift_t = torch.tensor(float(cfg.get("shift_factor") or 0.0))
            scale_t = torch.tensor(scale)
        view = (1, -1, 1, 1, 1) if self.frames else (1, -1, 1, 1)
        # buffers so that .to(device, dtype) moves them with the model
        self.register_buffer("shift", shift_t.reshape(view) if shift_t.numel() > 1 else shift_t, persistent=False)
        self.register_buffer("scale", scale_t.reshape(view) if scale_t.numel() > 1 else scale_t, persistent=False)
        self._channels, self.downsample = self._config_geometry(cfg)

    # -- geometry -------------------------------------------------------------
    @staticmethod
    def _config_geometry(cfg: dict) -> tuple[int | None, int | None]:
        channels = cfg.get("latent_channels") or cfg.get("z_channels")
        for key in ("encoder_block_out_channels", "down_block_out_channels", "block_out_channels"):
            if cfg.get(key):
                return channels, 2 ** (len(cfg[key]) - 1)
        return channels, None

    def _measure_geometry(self) -> tuple[int, int]:
        """Fallback for classes whose config does not say: encode one small blank image."""
        r = 64
        try:
            with torch.no_grad():
                z = self._encode(torch.zeros(1, self.image_channels, r, r, device=self.device, dtype=self.dtype))
        except Exception as e:
            raise ProbeError(f"{self.name} does not encode a {r}x{r} image: {_first_line(e)}") from e
        if z.dim() != 4:
            raise ProbeError(f"{self.name} gives latents of shape {tuple(z.shape)}, not [B, C, h, w]")
        self._channels, self.downsample = int(z.shape[1]), r // int(z.shape[-1])
        return self._channels, self.downsample

    def latent_shape(self, resolution: int | None = None) -> tuple[int, ...]:
        channels, down = self._channels, self.downsample
        if channels is None or down is None:
            channels, down = self._measure_geometry()
        r = resolution or self.default_resolution()
        if r % down:
            raise ProbeError(f"{self.name} needs a resolution that is a multiple of {down}, got {r}")
        return (int(channels), r // down, r // down)

    # -- the map --------------------------------------------------------------
    def _encode(self, x: Tensor) -> Tensor:
        x = x * 2 - 1
        if self.frames:
            x = x.unsqueeze(2)
        out = self.model.encode(x)
        if hasattr(out, "latent_dist"):
            dist = out.latent_dist
            z = dist.sample() if self.sample else dist.mean
        elif hasattr(out, "latents"):
            z = out.latents
        elif hasattr(out, "latent"):
            z = out.latent
        else:
            z = out[0] if isinstance(out, (tuple, list)) else out
        z = (z - self.shift) * self.scale
        return z.squeeze(2) if self.frames else z

    def _decode(self, z: Tensor) -> Tensor:
        if self.frames:
            z = z.unsqueeze(2)
        z = z / self.scale + self.shift
        out = self.model.decode(z)
        y = out.sample if hasattr(out, "sample") else out[0]
        y = (y + 1) / 2
        return y.squeeze(2) if self.frames else y

    def describe(self) -> dict:
        scale = self.scale.flatten().tolist()
        shift = self.shift.flatten().tolist()
        return {**super().describe(), "source": self.source, "diffusers_class": type(self.model).__name__,
                "sample": self.sample, "scaling": scale[0] if len(scale) == 1 else scale,
                "shift": shift[0] if len(shift) == 1 else shift, "downsample": self.downsample}


def load_diffusers(folder_or_repo: str | Path, subfolder: str | None = None, sample: bool = False,
                   device: str | None = None, dtype: torch.dtype | None = None, **opts) -> DiffusersMap:
    """A diffusers autoencoder from a local folder (or pipeline folder) or a Hub id.

    Other options go to ``from_pretrained`` (e.g. ``variant="fp16"``, ``revision``).
    """
    folder = Path(folder_or_repo).expanduser()
    if not folder.is_dir():
        from .hub import download

        folder = download(str(folder_or_repo), subfolder=subfolder)
    ae_dir = autoencoder_folder(folder, subfolder)
    cls = autoencoder_class(str(_read_config(ae_dir).get("_class_name", "")))
    from diffusers.utils import logging as dlog

    verbosity = dlog.get_verbosity()
    dlog.set_verbosity_error()  # e.g. AutoencoderTiny warns about a config key it wrote itself
    try:
        model = cls.from_pretrained(str(ae_dir), **opts)
    except TypeError as e:
        raise ProbeError(f"bad option for {cls.__name__}.from_pretrained: {_first_line(e)}") from e
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise ProbeError(f"cannot load {cls.__name__} from {ae_dir}: {_first_line(e)}") from e
    finally:
        dlog.set_verbosity(verbosity)
    m = DiffusersMap(model, source=str(folder if ae_dir == folder else ae_dir), sample=sample)
    if device is not None or dtype is not None:
        m = m.to(device=device, dtype=dtype)
    return m.eval()
