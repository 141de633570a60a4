"""The shared flag groups of every ``probe`` command, generated from the config dataclasses.

Each flag is declared once, here:

- **model**: the spec(s), ``--model-arg KEY=VALUE`` (repeatable), ``--image-size``, ``--channels``
  (and ``--device`` / ``--dtype`` for commands that search no attractors);
- **field**: every :class:`~probe.field.FieldConfig` field (``--seeds``, ``--tol``, ``--max-steps``,
  ``--solver``, ``--dtype``, ``--device``, ``--threads``, ``--checkpoint-every`` ...);
- **data**: ``--resize``;
- **output**: ``--out``, ``--overwrite``, ``--config``, ``--quiet``, ``--json``, ``--report``.

A command adds the flags of its own config with :func:`add_config_flags` and reads them back
with :func:`config_from_args`. Precedence, for every field: an explicit flag > the YAML file
given with ``--config`` > the config's default.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..config import apply, flag_specs, yaml_values
from ..errors import ConfigError, ProbeError

__all__ = ["add_config_flags", "add_model_flags", "add_field_flags", "add_data_flags", "add_output_flags",
           "config_from_args", "load_model", "image_options", "resolve_out", "record_command", "emit", "say",
           "write_report", "flag_of", "given", "note", "output_folder", "add_image_probe_parser", "probe_images"]

FLAG_NAMES = {"n_seeds": "--seeds"}  # "N seeds", as the paper says it
RESIZE = ("bilinear", "bicubic", "lanczos", "nearest", "none")
PREFIX = "cfg."  # dest of a config flag: cfg.field.tol
T = TypeVar("T")


def flag_of(name: str) -> str:
    return FLAG_NAMES.get(name, "--" + name.replace("_", "-"))


def _default(instance: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        instance = getattr(instance, name)
    return instance


def add_config_flags(parser, cls: type, *, prefix: tuple[str, ...] = (), skip: tuple[str, ...] = (),
                     defaults: Any = None) -> None:
    """One flag per field of ``cls`` (from :func:`probe.config.flag_specs`), nested configs left out;
    ``prefix`` is where ``cls`` sits in the command's config (``("field",)``).

    Every flag defaults to None, so that an absent flag keeps the YAML or default value;
    ``defaults`` (an instance of ``cls``) supplies the default shown in the help.
    """
    shown = defaults if defaults is not None else cls()
    for spec in flag_specs(cls, prefix):
        if len(spec.path) != len(prefix) + 1 or spec.path[-1] in skip:
            continue
        value = getattr(shown, spec.path[-1])
        text = spec.help + (f" (default {value})" if value is not None else "")
        if spec.choices:
            text += f"; one of {', '.join(map(str, spec.choices))}"
        flag = flag_of(spec.path[-1]) if spec.flag == "--" + spec.path[-1].replace("_", "-") else spec.flag
        kw = dict(dest=PREFIX + spec.dest, default=None, help=text.replace("%", "%%"))
        if spec.kind == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        else:
            parser.add_argument(flag, type=spec.argparse_type(), metavar="A,B,..." if spec.kind == "list"
                                else spec.path[-1].upper(), **kw)


def given(args: argparse.Namespace, *path: str) -> bool:
    """Whether the flag of the config field at ``path`` was given on the command line."""
    return getattr(args, PREFIX + ".".join(path), None) is not None


def config_from_args(cls: type, args: argparse.Namespace) -> Any:
    """The config of a command: its defaults, then the YAML file (``--config``), then explicit flags."""
    path = getattr(args, "config", None)
    cfg = cls()
    if path is not None:
        cfg = apply(cls, cfg, yaml_values(cls, path)[0], f"config {path}")
    flags = {k[len(PREFIX):]: v for k, v in vars(args).items() if k.startswith(PREFIX) and v is not None}
    return apply(cls, cfg, flags) if flags else cfg


# -- the groups --------------------------------------------------------------------------------
def add_model_flags(parser, names: tuple[str, ...] = ("spec",), device_dtype: bool = False) -> None:
    """Positional model spec(s) and how to load them."""
    for name in names:
        parser.add_argument(name, metavar=name.upper() if name != "spec" else "SPEC",
                            help="model: a local folder, builtin:<name>, a Hub id, ...")
    g = parser.add_argument_group("model")
    g.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="keyword argument of a FILE.py:factory model (repeatable), e.g. --model-arg bottleneck=16")
    g.add_argument("--image-size", type=int, default=None, metavar="PX",
                   help="image size of a model that does not declare one")
    g.add_argument("--channels", type=int, choices=[1, 3], default=None,
                   help="image channels of a model that does not declare them")
    if device_dtype:
        g.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default cpu)")
        g.add_argument("--dtype", default=None, help="model dtype: fp32, fp64, bf16 or fp16 (default: as loaded)")


def add_field_flags(parser, defaults: Any, skip: tuple[str, ...] = ()) -> None:
    """Every FieldConfig field as a flag; ``defaults`` is the command's FieldConfig (shown in the help)."""
    from ..field.config import FieldConfig

    g = parser.add_argument_group("attractor search (FieldConfig)")
    add_config_flags(g, FieldConfig, prefix=("field",), skip=skip, defaults=defaults)


def add_data_flags(parser) -> None:
    g = parser.add_argument_group("data")
    g.add_argument("--resize", choices=RESIZE, default="bilinear",
                   help="how images are resized to the model's size (default bilinear; none: refuse other sizes)")


def add_output_flags(parser, default_out: str) -> None:
    g = parser.add_argument_group("output")
    g.add_argument("--out", default=None, metavar="DIR", help=f"output folder (default {default_out})")
    g.add_argument("--overwrite", action="store_true", help="replace a finished result made with other settings")
    g.add_argument("--config", default=None, metavar="YAML", help="YAML with this command's settings "
                   "(its section, or top level; a top-level 'field:' section applies to every command)")
    g.add_argument("--quiet", action="store_true", help="no progress bars and no prose")
    g.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    g.add_argument("--report", action="store_true", help="also write the HTML/markdown report of the output folder")


def add_image_probe_parser(subparsers, name: str, cls: type, *, help: str, description: str | None,
                           func: Callable[..., int]) -> argparse.ArgumentParser:
    """A command that iterates a set of images (not Gaussian seeds): model, --images, its config, the
    field flags without the seed settings, data and output flags.

    ``func(args, cfg, model, out)`` runs it, given the ``cls`` config read back from those flags
    (:func:`config_from_args`), the model loaded on the field's device and the output folder
    (``--out``, else ``<name>-out/<model>``).
    """
    p = subparsers.add_parser(name, help=help, description=description,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_flags(p)
    p.add_argument("--images", required=True, help="image set: a probe.data spec (fashion-mnist, mnist, cifar10 ...), "
                   "a folder or a .npz")
    add_config_flags(p, cls)
    add_field_flags(p, cls().field, skip=("n_seeds", "seed_dist"))
    add_data_flags(p)
    add_output_flags(p, f"{name}-out/<model>")

    def start(args: argparse.Namespace) -> int:
        cfg = config_from_args(cls, args)
        return func(args, cfg, load_model(args, args.spec, cfg.field), resolve_out(args, name, args.spec))

    p.set_defaults(func=start)
    return p


def probe_images(args: argparse.Namespace, cfg: Any, resolution: int, channels: int | None):
    """The ``--images`` of an image probe: ``cfg.n_images`` of split ``cfg.split``, drawn with the field's
    seed, at ``resolution`` px with ``channels`` (None: the set's own), resized as ``--resize`` says."""
    from ..data import load_images

    return load_images(args.images, split=cfg.split, n=cfg.n_images, seed=cfg.field.seed, resolution=resolution,
                       channels=channels, **image_options(args))


# -- using them --------------------------------------------------------------------------------
def model_args(items: list[str]) -> dict:
    """The ``--model-arg KEY=VALUE`` flags as keyword arguments for a model factory."""
    from ..maps.code import parse_model_args

    return parse_model_args(items)


def load_model(args: argparse.Namespace, spec: str, field: Any = None):
    """``probe.load(spec, ...)`` with the model flags; device (and a CUDA check) and threads from the field config."""
    import torch

    from .. import load

    device = getattr(field, "device", None) if field is not None else getattr(args, "device", None)
    threads = getattr(field, "threads", None)
    if threads:  # a command is its own process: --threads holds for all it computes
        torch.set_num_threads(int(threads))
    if device:
        try:
            torch.device(str(device))
        except (RuntimeError, ValueError):
            raise ConfigError(f"--device {device!r} is not a device; use cpu, cuda, cuda:N or mps") from None
    if device and str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available on this machine (use --device cpu)")
    options = {"model_args": model_args(getattr(args, "model_arg", [])) or None,
               "image_size": getattr(args, "image_size", None), "channels": getattr(args, "channels", None)}
    options = {k: v for k, v in options.items() if v is not None}
    dtype = getattr(args, "dtype", None) if field is None else None  # with a field, --dtype is the iteration's
    return load(spec, device=device, dtype=dtype, **options)


def image_options(args: argparse.Namespace) -> dict:
    """Keyword arguments for ``probe.data.load_images`` from the data flags."""
    resize = getattr(args, "resize", "bilinear")
    return {} if resize == "bilinear" else {"resize": resize}


def resolve_out(args: argparse.Namespace, command: str, *specs: str) -> Path:
    """``--out``, else ``<command>-out/<model>``: folders of different models never collide."""
    from ..probes.common import slug

    if args.out is None:
        args.out = str(Path(f"{command}-out") / "_vs_".join(slug(s) for s in specs)) if specs else f"{command}-out"
    return Path(args.out)


def command_line(args: argparse.Namespace) -> str:
    argv = getattr(args, "argv", None)
    if argv is None:
        argv = sys.argv[1:] if Path(sys.argv[0]).name == "probe" else []
    return shlex.join(["probe", *argv])


def versions() -> dict:
    import importlib.metadata as md

    out = {}
    for pkg in ("latent-probe", "torch", "diffusers", "accelerate"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def record_command(args: argparse.Namespace, out: Path, config: Any = None, **extra: Any) -> Path:
    """``out/manifest.json``: the command line, when, versions, the resolved config and ``extra``."""
    from ..io import save_json

    manifest = {"command": command_line(args), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "versions": versions(), "config": dataclasses.asdict(config)
                if dataclasses.is_dataclass(config) and not isinstance(config, type) else config, **extra}
    return save_json(Path(out) / "manifest.json", manifest)


def say(args: argparse.Namespace):
    """A progress logger to stderr, or None with --quiet."""
    if getattr(args, "quiet", False):
        return None
    return lambda msg: print(msg, file=sys.stderr, flush=True)


def emit(args: argparse.Namespace, text: str, summary: dict) -> None:
    """The command's answer: ``summary`` as JSON with --json, else ``text`` (nothing with --quiet)."""
    from ..io import to_jsonable

    if getattr(args, "json", False):
        print(json.dumps(to_jsonable(summary), indent=2))
    elif not getattr(args, "quiet", False) and text:
        print(text)


def write_report(args: argparse.Namespace, out: Path) -> Path | None:
    """With --report, ``probe.report.write_report(out)`` (when that module exists); its path."""
    if not getattr(args, "report", False):
        return None
    try:
        from ..report import write_report as write
    except ImportError as e:
        raise ProbeError(f"--report: the report writer is not available ({e})") from e
    path = write(out)
    if not getattr(args, "quiet", False):
        print(f"report: {path}", file=sys.stderr)
    return path


def note(args: argparse.Namespace, msg: str) -> None:
    """One line of prose on stderr (nothing with --quiet)."""
    if not getattr(args, "quiet", False):
        print(msg, file=sys.stderr, flush=True)


class _Folder:
    """An OutputFolder as a ``with`` block that never swallows an error (so type checkers know it)."""

    def __init__(self, inner):
        self.inner = inner

    def __enter__(self):
        return self.inner.__enter__()

    def __exit__(self, *exc) -> None:
        self.inner.__exit__(*exc)


def output_folder(args: argparse.Namespace, out: Path, settings: dict) -> _Folder:
    """The command's :class:`probe.io.OutputFolder` (checked, locked, keyed by ``settings``)."""
    from ..io import IGNORED, OutputFolder

    return _Folder(OutputFolder(out, settings, overwrite=getattr(args, "overwrite", False),
                                ignore=(*IGNORED, "image_batch")))


def reuse(args: argparse.Namespace, folder, load: Callable[[], T]) -> T | None:
    """In an output folder: the finished result (``load()``), said so; else None, saying what resumes."""
    if folder.note:
        note(args, folder.note)
    return load() if folder.finished else None
