"""Train a conv autoencoder of the paper's family through HF accelerate (METHOD.md section 3).

The paper's recipe: Adam, lr 5e-4, weight decay 1e-4 (plain L2 inside Adam, not AdamW), a
step scheduler; MSE reconstruction loss. One training run owns a folder::

    probe_map.json, model.safetensors   the latest finished epoch (``probe.load(out)`` works mid-run)
    train.json                          config, map description, per-epoch train / test MSE
    checkpoints/epoch_0001/ ...         the model after each epoch (memorization counts
                                        attractors per epoch from these)
    checkpoints/state.pt                optimizer, scheduler and epoch, to resume

Calling :func:`train` again on the same folder resumes after the last finished epoch; asking
for more epochs than were run extends the run.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from .config import asdict, field, require_positive
from .errors import ConfigError, ProbeError
from .io import atomic_write, load_json, save_json
from .maps.convae import ConvAE, ConvAEConfig, load_saved, paper_adam

__all__ = ["TrainConfig", "TrainRun", "train", "augment", "mse", "AUGMENTS"]

AUGMENTS = ("none", "shift", "flip", "shift+flip")
#: Fields that may differ when a run is resumed (everything else must match the folder).
RESUMABLE = {"epochs", "device", "keep_checkpoints", "keep_epochs"}


@dataclass(frozen=True)
class TrainConfig:
    """One training run; defaults are the paper's optimizer settings."""

    section = "train"

    dataset: str = field("fashion-mnist", "image set spec for probe.data.load_images (fashion-mnist, mnist, cifar10, ...)")
    n_train: int | None = field(None, "training images (a seeded subset; None = the whole train split)")
    n_test: int | None = field(2000, "held-out test images used for the test MSE each epoch (None = all)")
    image_size: int | None = field(None, "resize images to this many pixels (None = the dataset's own size)")
    image_channels: int | None = field(None, "1 grayscale or 3 RGB (None = the dataset's own channels)")
    width: int = field(32, "d: channels of the first conv (encoder d, 2d, 4d, 8d)")
    bottleneck: int = field(16, "k: latent size")
    epochs: int = field(20, "epochs to train (a resumed run continues up to this many)")
    batch_size: int = field(128, "images per step")
    lr: float = paper_adam("lr")
    weight_decay: float = paper_adam("weight_decay", "; it makes the latent map contractive")
    lr_step: int = field(10, "StepLR step size in epochs (the paper uses a step scheduler without giving values)")
    lr_gamma: float = field(0.5, "StepLR factor")
    augment: str = field("none", "augmentation: none, shift (random 2 px translation), flip (horizontal), shift+flip")
    seed: int = field(0, "seed for the data subset, initialisation and batch order")
    device: str = field("cpu", "cpu or cuda[:i]")
    keep_checkpoints: bool = field(True, "keep the model weights of every epoch (for attractors per epoch)")
    keep_epochs: list[int] = field([], "with keep_checkpoints: keep only these epochs' weights (empty = every epoch)")

    def __post_init__(self):
        require_positive(self, ("width", "bottleneck", "epochs", "batch_size", "lr_step"))
        if self.augment not in AUGMENTS:
            raise ConfigError(f"augment must be one of {', '.join(AUGMENTS)}, got {self.augment!r}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ConfigError("lr must be > 0 and weight_decay >= 0")
        if any(not isinstance(e, int) or e < 1 for e in self.keep_epochs):
            raise ConfigError(f"keep_epochs must be positive integers, got {list(self.keep_epochs)}")


@dataclass
class TrainRun:
    """A finished (or partly finished) run: the model, its history and its folder."""

    model: ConvAE
    history: list[dict]
    config: TrainConfig
    folder: Path

    @classmethod
    def load(cls, folder: str | Path) -> TrainRun:
        folder = Path(folder)
        meta = load_json(folder / "train.json")
        cfg = TrainConfig(**meta["config"])
        return cls(load_saved(folder), meta["history"], cfg, folder)

    def checkpoint(self, epoch: int) -> ConvAE:
        """The model as it was after ``epoch`` (1-based)."""
        path = self.folder / "checkpoints" / f"epoch_{epoch:04d}"
        if not path.is_dir():
            raise ProbeError(f"no checkpoint for epoch {epoch} in {self.folder} (run with keep_checkpoints)")
        return load_saved(path)

    @property
    def epochs_done(self) -> int:
        return len(self.history)


def augment(x: Tensor, how: str, gen: torch.Generator) -> Tensor:
    """Random 2 px translation (zero padded) and / or horizontal flip, per image."""
    if "shift" in how:
        n, _, h, w = x.shape
        pad = torch.nn.functional.pad(x, (2, 2, 2, 2))
        dy, dx = (torch.randint(0, 5, (n,), generator=gen) for _ in range(2))
        rows = (dy[:, None] + torch.arange(h))[:, None, :, None].expand(-1, x.shape[1], -1, w + 4)
        pad = pad.gather(2, rows.to(x.device))
        cols = (dx[:, None] + torch.arange(w))[:, None, None, :].expand(-1, x.shape[1], h, -1)
        x = pad.gather(3, cols.to(x.device))
    if "flip" in how:
        flip = (torch.rand(x.shape[0], generator=gen) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x


def _load_sets(cfg: TrainConfig):
    from .data import load_images

    size, chans = cfg.image_size, cfg.image_channels
    train_set = load_images(cfg.dataset, split="train", n=cfg.n_train, seed=cfg.seed, resolution=size, channels=chans)
    test_set = load_images(cfg.dataset, split="test", n=cfg.n_test, seed=cfg.seed, resolution=size, channels=chans)
    return train_set, test_set


def _images(s) -> Tensor:
    """uint8 [N, C, H, W] from an ImageSet or a tensor (uint8, or float in [0, 1])."""
    x = s.images if hasattr(s, "images") else s
    if not isinstance(x, Tensor) or x.dim() != 4:
        raise ProbeError("training images must be an ImageSet or a [N, C, H, W] tensor")
    return x if x.dtype == torch.uint8 else (x.clamp(0, 1) * 255).round().to(torch.uint8)


def _atomic_torch_save(obj, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp), what="the optimizer state")


def _check_resume(folder: Path, cfg: TrainConfig) -> dict | None:
    if not (folder / "train.json").is_file():
        return None
    meta = load_json(folder / "train.json")
    old = meta.get("config", {})
    diff = sorted(k for k, v in asdict(cfg).items() if k not in RESUMABLE and old.get(k) != v)
    if diff:
        raise ProbeError(f"{folder} holds a run with other settings ({', '.join(f'{k}={old.get(k)!r}' for k in diff)}); "
                         f"use another output folder")
    return meta


@torch.no_grad()
def mse(model: ConvAE, images: Tensor, batch_size: int = 512) -> float:
    """Mean squared reconstruction error over uint8 images (pixels in [0, 1])."""
    model.eval()
    total, dev = 0.0, model.device
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].to(dev).float() / 255
        total += float(((model.reconstruct(x) - x) ** 2).sum())
    return total / images[0].numel() / max(len(images), 1)


def train(cfg: TrainConfig, out: str | Path, *, train_set=None, test_set=None,
          on_epoch: Callable[[int, ConvAE], dict | None] | None = None, log: Callable[[str], None] | None = print) -> TrainRun:
    """Train (or resume) the run in ``out``. ``train_set`` / ``test_set`` override ``cfg.dataset``
    (an ImageSet or a uint8 / [0, 1] float tensor ``[N, C, H, W]``); ``on_epoch(epoch, model)``
    may return extra numbers to store in that epoch's history row."""
    from accelerate import Accelerator

    folder = Path(out)
    meta = _check_resume(folder, cfg)
    history = list(meta["history"]) if meta else []
    if train_set is None:
        train_set, test_set = _load_sets(cfg)
    x_train = _images(train_set)
    x_test = _images(test_set) if test_set is not None else x_train[:0]
    size, chans = x_train.shape[-1], x_train.shape[1]
    if x_train.shape[-2] != size:
        raise ProbeError(f"training images must be square, got {tuple(x_train.shape[-2:])}")

    with torch.random.fork_rng(devices=[]):  # the caller's global RNG stays as it was
        torch.manual_seed(cfg.seed)
        model = ConvAE(ConvAEConfig(image_size=size, image_channels=chans, width=cfg.width, bottleneck=cfg.bottleneck))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_step, gamma=cfg.lr_gamma)
    state_path = folder / "checkpoints" / "state.pt"
    if history:
        if not state_path.is_file():
            raise ProbeError(f"{folder} has a history but no checkpoints/state.pt to resume from")
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        history = history[: state["epoch"]]  # a crash between files never leaves a row without weights

    acc = Accelerator(cpu=not str(cfg.device).startswith("cuda"))
    model, opt = acc.prepare(model, opt)
    net = acc.unwrap_model(model)
    dev = acc.device
    if log and len(history) >= cfg.epochs:
        log(f"{folder}: already trained for {len(history)} epochs")

    for epoch in range(len(history) + 1, cfg.epochs + 1):
        t0 = time.time()
        net.train()
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)  # batch order depends only on (seed, epoch)
        order = torch.randperm(len(x_train), generator=gen)
        seen, run_loss = 0, 0.0
        for i in range(0, len(order), cfg.batch_size):
            x = x_train[order[i:i + cfg.batch_size]].to(dev).float() / 255
            if cfg.augment != "none":
                x = augment(x, cfg.augment, gen)
            loss = torch.nn.functional.mse_loss(net.reconstruct(x), x)
            opt.zero_grad(set_to_none=True)
            acc.backward(loss)
            opt.step()
            seen += len(x)
            run_loss += float(loss.detach()) * len(x)
        lr = opt.param_groups[0]["lr"]
        sched.step()
        row = {"epoch": epoch, "train_loss": run_loss / seen, "train_mse": mse(net, x_train),
               "test_mse": mse(net, x_test) if len(x_test) else None, "lr": lr, "seconds": round(time.time() - t0, 2)}
        if on_epoch is not None:
            row.update(on_epoch(epoch, net.eval()) or {})
        history.append(row)
        _save_epoch(folder, net, opt, sched, cfg, history, train_set, test_set)
        if log:
            test = f"{row['test_mse']:.5f}" if row["test_mse"] is not None else "-"
            log(f"epoch {epoch}/{cfg.epochs}  train mse {row['train_mse']:.5f}  test mse {test}  ({row['seconds']}s)")
    net.eval()
    return TrainRun(net, history, cfg, folder)


def _save_epoch(folder: Path, net: ConvAE, opt, sched, cfg: TrainConfig, history: list[dict], train_set, test_set):
    epoch = len(history)
    facts = {"trained_with": "probe.train", "epochs": epoch, "train_mse": history[-1]["train_mse"],
             "test_mse": history[-1]["test_mse"], "dataset": cfg.dataset}
    if cfg.keep_checkpoints and (not cfg.keep_epochs or epoch in cfg.keep_epochs):
        net.save(folder / "checkpoints" / f"epoch_{epoch:04d}", **facts)
    # Weights first, then the optimizer state that claims them, then the history: any crash
    # leaves a folder that resumes from the last epoch whose weights are on disk.
    net.save(folder, **facts)
    _atomic_torch_save({"model": net.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                        "epoch": epoch}, folder / "checkpoints" / "state.pt")
    data = {k: s.describe() if hasattr(s, "describe") else {"tensor": list(s.shape)} for k, s in
            (("train", train_set), ("test", test_set)) if s is not None}
    save_json(folder / "train.json", {"config": asdict(cfg), "map": net.describe(), "data": data, "history": history})

