"""Bad inputs and faults, as a new user meets them: each ends in one line, and nothing finished is lost.

Every case asserts the outcome (a ``ProbeError`` from the API, exit code 2 from a command), a single
line that names the problem (no traceback), and that the results already on disk (a finished
``probe run``, another model's attractor set, a toy Result) are byte-identical afterwards. Commands
run in-process through ``probe.cli.main.main(argv)``. Full and read-only disks use a small tmpfs
when the tests run as root, and skip with the reason otherwise.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from probe.errors import ProbeError
from probe.result import Result

BUILTIN = Path(__file__).resolve().parent.parent / "probe" / "builtin" / "fmnist-k16"
SMALL = ["--seeds", "4", "--max-steps", "20", "--quiet"]


@dataclass
class BadInputsToy(Result):
    x: torch.Tensor

    def _tensors(self):
        return {"x": self.x}

    def _meta(self):
        return {"config": {"n": len(self.x)}, "model": None}

    @classmethod
    def _from_saved(cls, tensors, meta):
        return cls(x=tensors["x"])


def cli(*argv: str) -> tuple[int, str, str]:
    """``probe ARGV`` in this process: (exit code, stdout, stderr); an uncaught exception fails the test."""
    import contextlib
    import io

    from probe.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(argv))
        except SystemExit as e:  # argparse
            rc = e.code if isinstance(e.code, int) else 1
    return rc, out.getvalue(), err.getvalue()


def the_line(err: str) -> str:
    """The one error line of stderr (argparse's usage lines aside); fails on a traceback or several lines."""
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("usage:", " "))]
    assert len(lines) == 1, f"expected one line, got:\n{err}"
    return lines[0]


def snapshot(*folders: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for f in folders for p in sorted(f.rglob("*")) if p.is_file()}


# -- the world: finished results and broken files ------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    from safetensors.torch import load_file, save_file

    root = tmp_path_factory.mktemp("world")
    w = {"root": root, "done": root / "done", "other": root / "other-set", "toy": root / "toy"}
    rc, _, err = cli("run", "builtin:fmnist-k16", *SMALL, "--out", str(w["done"]))
    assert rc == 0, err
    w["other_model"] = root / "other-model"
    shutil.copytree(BUILTIN, w["other_model"])
    weights = load_file(str(BUILTIN / "model.safetensors"))
    save_file({k: v + 0.01 if v.is_floating_point() else v for k, v in weights.items()},
              str(w["other_model"] / "model.safetensors"))
    rc, _, err = cli("run", str(w["other_model"]), *SMALL, "--out", str(w["other"]))
    assert rc == 0, err
    BadInputsToy(x=torch.arange(3.0)).save(w["toy"])
    w["truncated_model"] = root / "truncated-model"
    shutil.copytree(BUILTIN, w["truncated_model"])
    blob = (BUILTIN / "model.safetensors").read_bytes()
    (w["truncated_model"] / "model.safetensors").write_bytes(blob[: len(blob) // 2])
    w["truncated_set"] = root / "truncated-set"
    shutil.copytree(w["done"], w["truncated_set"])
    t = w["truncated_set"] / "tensors.safetensors"
    t.write_bytes(t.read_bytes()[:-64])
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (16, 28, 28), dtype=np.uint8)
    np.savez(root / "good.npz", images=images)
    np.savez(root / "shifted.npz", images=np.roll(images, 3, axis=2))
    nan = images.astype(np.float32) / 255
    nan[3, 4, 5] = np.nan
    np.savez(root / "nan.npz", images=nan)
    inf = images.astype(np.float32) / 255
    inf[0, 0, 0] = np.inf
    np.savez(root / "inf.npz", images=inf)
    (root / "truncated.npz").write_bytes((root / "good.npz").read_bytes()[:500])
    (root / "text.npz").write_text("these are not images\n")
    (root / "random.pth").write_bytes(os.urandom(4096))
    (root / "notmodel").mkdir()
    (root / "notmodel" / "readme.txt").write_text("hello")
    (root / "afile").write_text("a file, not a folder")
    (root / "bad.yaml").write_text("run:\n  n_seeds: [1, 2\n")
    (root / "eight.yaml").write_text("run:\n  field:\n    n_seeds: eight\n")
    (root / "unknown.yaml").write_text("run:\n  n_seed: 8\n")
    (root / "list.yaml").write_text("- 1\n- 2\n")
    (root / "field-eight.yaml").write_text("field:\n  seed: 1\n  n_seeds: eight\n")
    (root / "field-unknown.yaml").write_text("n_seed: 8\n")
    return w


@pytest.fixture
def guarded(world, tmp_path, monkeypatch):
    """Runs in a fresh folder; after the case, the finished results must be byte-identical."""
    monkeypatch.chdir(tmp_path)
    kept = (world["done"], world["other"], world["toy"])
    before = snapshot(*kept)
    yield world
    assert snapshot(*kept) == before, "a finished result on disk was changed"
    assert not [p for f in kept for p in f.rglob("*.tmp")]


# -- the API and the base modules ---------------------------------------------------------------
def _build(**kw):
    from probe.config import build
    from probe.field.config import FieldConfig

    return lambda w, t: build(FieldConfig, **kw)


def _yaml(name: str):
    from probe.config import build
    from probe.field.config import FieldConfig

    return lambda w, t: build(FieldConfig, w["root"] / name)


def _write_under_file(w, t):
    from probe.io import save_json

    save_json(w["root"] / "afile" / "x.json", {})


def _output(folder_of, settings=None, overwrite=False):
    def case(w, t):
        from probe.io import OutputFolder

        with OutputFolder(folder_of(w, t), settings or {"config": {"n_seeds": 99}}, overwrite=overwrite):
            raise AssertionError("entered a folder that should be refused")
    return case


def _live_lock(w, t):
    import json
    import socket

    from probe.io import OutputFolder

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (t / "busy").mkdir()
        (t / "busy" / ".lock").write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname()}))
        with OutputFolder(t / "busy", {"a": 1}):
            raise AssertionError("a second writer got in")
    finally:
        sleeper.kill()
        sleeper.wait()


def _load(path_of):
    def case(w, t):
        from probe.result import load_result

        load_result(path_of(w, t))
    return case


def _edited_copy(edit):
    def path(w, t):
        import json

        dst = t / "copy"
        shutil.copytree(w["done"], dst)
        meta = json.loads((dst / "meta.json").read_text())
        edit(meta, dst)
        (dst / "meta.json").write_text(json.dumps(meta))
        return dst
    return path


def _broken_meta(w, t):
    dst = t / "broken"
    shutil.copytree(w["done"], dst)
    (dst / "meta.json").write_text('{"kind": "AttractorSet", ')
    return dst


def _attractor_set_load(path_of):
    def case(w, t):
        from probe.field import AttractorSet

        AttractorSet.load(path_of(w, t))
    return case


def _probe_load(path_of):
    def case(w, t):
        import probe

        probe.load(str(path_of(w, t)))
    return case


def _find(**kw):
    def case(w, t):
        import probe

        probe.find_attractors(probe.load("builtin:fmnist-k16"), **kw)
    return case


def _flag(flag: str, text: str):
    def case(w, t):
        from probe.config import flag_specs
        from probe.field.config import FieldConfig

        next(s for s in flag_specs(FieldConfig) if s.flag == flag).parse(text)
    return case


API = {
    "config n_seeds eight": (_build(n_seeds="eight"), r"n_seeds must be an integer, got 'eight'"),
    "config n_seeds 2.5": (_build(n_seeds=2.5), r"n_seeds must be an integer, got 2\.5"),
    "config negative seed": (_build(seed=-3), r"seed must be >= 0"),
    "config negative tol": (_build(tol=-1e-6), r"tol must be a finite number > 0"),
    "config tol inf": (_build(tol="inf"), r"tol must be a finite number > 0"),
    "config tol nan": (_build(tol="nan"), r"tol must be a finite number > 0"),
    "config unknown merge": (_build(merge="manhattan"), r"merge must be one of"),
    "config unknown setting": (_build(n_seed=3), r"unknown setting 'n_seed'.*did you mean n_seeds"),
    "yaml syntax error": (_yaml("bad.yaml"), r"bad\.yaml line \d+, column \d+: not valid YAML"),
    "yaml n_seeds eight": (_yaml("field-eight.yaml"), r"eight\.yaml line 3: n_seeds must be an integer"),
    "yaml unknown key": (_yaml("field-unknown.yaml"), r"unknown setting 'n_seed'"),
    "yaml not a mapping": (_yaml("list.yaml"), r"must be a mapping"),
    "yaml missing file": (_yaml("absent.yaml"), r"config file not found"),
    "flag text for an int": (_flag("--max-steps", "abc"), r"--max-steps: max_steps must be an integer"),
    "write under a file": (_write_under_file, r"afile is a file, not a folder"),
    "out folder is a file": (_output(lambda w, t: w["root"] / "afile"), r"afile is a file, not a folder"),
    "out folder under a file": (_output(lambda w, t: w["root"] / "afile" / "o"), r"is a file, not a folder"),
    "finished result, other settings": (_output(lambda w, t: w["done"]), r"other settings.*--overwrite"),
    "foreign files in out": (_output(lambda w, t: w["root"] / "notmodel"), r"did not make.*--overwrite"),
    "second live writer": (_live_lock, r"in use by another probe process \(pid \d+"),
    "load absent folder": (_load(lambda w, t: t / "absent"), r"does not exist"),
    "load a file": (_load(lambda w, t: w["root"] / "afile"), r"is a file"),
    "load a folder without meta": (_load(lambda w, t: w["root"] / "notmodel"), r"not a probe result"),
    "load truncated tensors": (_load(lambda w, t: w["truncated_set"]), r"tensors\.safetensors is truncated"),
    "load newer version": (_load(_edited_copy(lambda m, d: m.update(version=99))), r"newer.*upgrade probe"),
    "load unknown kind": (_load(_edited_copy(lambda m, d: m.update(kind="Atlas"))), r"kind 'Atlas'.*does not know"),
    "load missing key": (_load(_edited_copy(lambda m, d: m.pop("config"))), r"meta\.json has no key 'config'"),
    "load missing tensor file": (_load(_edited_copy(lambda m, d: (d / "tensors.safetensors").unlink())),
                                 r"tensors\.safetensors is missing"),
    "load meta not json": (_load(_broken_meta), r"meta\.json is damaged"),
    "attractor set from toy": (_attractor_set_load(lambda w, t: w["toy"]),
                               r"holds a BadInputsToy, not an? AttractorSet"),
    "load model: no such spec": (_probe_load(lambda w, t: t / "no" / "such" / "model"),
                                 r"no/such/model|not found|no such"),
    "load model: random .pth": (_probe_load(lambda w, t: w["root"] / "random.pth"), r"random\.pth"),
    "load model: truncated weights": (_probe_load(lambda w, t: w["truncated_model"]), r"model\.safetensors"),
    "load model: not a model": (_probe_load(lambda w, t: w["root"] / "notmodel"), r"notmodel"),
    "find_attractors n_seeds 0": (_find(n_seeds=0), r"n_seeds must be >= 1"),
    "find_attractors tol -1": (_find(tol=-1.0), r"tol must be a finite number > 0"),
    "find_attractors n_seeds 2.5": (_find(n_seeds=2.5), r"n_seeds must be an integer"),
    "find_attractors seeds of a wrong shape": (_find(seeds=np.zeros((2, 3), dtype=np.float32)), r"shape"),
}


@pytest.mark.parametrize("name", sorted(API))
def test_api_bad_input_is_one_line(guarded, tmp_path, name):
    case, words = API[name]
    with pytest.raises(ProbeError) as e:
        case(guarded, tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and re.search(words, msg), msg
    assert "weights_only=False" not in msg and "allow_pickle" not in msg  # never advise unsafe loading


def test_numpy_seeds_are_accepted(guarded):
    import probe

    m = probe.load("builtin:fmnist-k16")
    seeds = np.random.default_rng(0).standard_normal((2, *m.latent_shape())).astype(np.float32)
    assert len(probe.find_attractors(m, seeds=seeds, max_steps=5).status) == 2


# -- the commands --------------------------------------------------------------------------------
def _p(key: str, sub: str = ""):
    """A path of the world (or below it), filled in when the case runs."""
    return lambda w, t: str(w[key] / sub) if sub else str(w[key])


def _t(sub: str):
    return lambda w, t: str(t / sub)


def _locked(sub: str):
    """A folder locked by a live writer (this test process: alive for sure)."""
    def path(w, t):
        import json
        import socket

        (t / sub).mkdir()
        (t / sub / ".lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
        return str(t / sub)
    return path


B = "builtin:fmnist-k16"
RUN = ["run", B, *SMALL]
DICT = ["dictionary", B, "--seeds", "8", "--max-steps", "20", "--n-images", "8", "--pca-images", "8", "--quiet"]
OOD = ["ood", B, "--max-steps", "20", "--knn-k", "3", "--n-train", "8", "--n-test", "8", "--quiet"]
NPZ = _p("root", "nan.npz")
COMMANDS = {
    # probe run: settings
    "run --seeds eight": ([*RUN, "--seeds", "eight"], r"--seeds.*n_seeds must be an integer, got 'eight'"),
    "run --seeds 2.5": ([*RUN, "--seeds", "2.5"], r"n_seeds must be an integer, got '?2\.5"),
    "run --seeds 0": ([*RUN, "--seeds", "0"], r"n_seeds must be >= 1"),
    "run --seed=-3": ([*RUN, "--seed=-3"], r"seed must be >= 0"),
    "run --tol=-1e-6": ([*RUN, "--tol=-1e-6"], r"tol must be a finite number > 0"),
    "run --tol -1e-6": ([*RUN, "--tol", "-1e-6"], r"tol must be a finite number > 0"),
    "run --tol=inf": ([*RUN, "--tol=inf"], r"tol must be a finite number > 0"),
    "run --tol 0": ([*RUN, "--tol", "0"], r"tol must be a finite number > 0"),
    "run --max-steps 0": ([*RUN, "--max-steps", "0"], r"max_steps must be an integer >= 1"),
    "run --batch-size 0": ([*RUN, "--batch-size", "0"], r"batch_size must be an integer >= 1"),
    "run --checkpoint-every -1": ([*RUN, "--checkpoint-every=-1"], r"checkpoint_every must be >= 0"),
    "run --merge manhattan": ([*RUN, "--merge", "manhattan"], r"merge"),
    "run --solver secant": ([*RUN, "--solver", "secant"], r"solver"),
    "run --dtype fp8": ([*RUN, "--dtype", "fp8"], r"dtype"),
    "run --merge-threshold 2": ([*RUN, "--merge-threshold", "2"], r"merge_threshold.*\[-1, 1\]"),
    "run --device nonsense": ([*RUN, "--device", "nonsense"], r"device"),
    "run --resolution 64 on 28 px": ([*RUN, "--resolution", "64"], r"28"),
    "run unknown flag": ([*RUN, "--frobnicate"], r"unrecognized arguments: --frobnicate"),
    # probe run: models
    "run no such model": (["run", "no/such/model", *SMALL], r"no/such/model"),
    "run a folder that is no model": (["run", _p("root", "notmodel"), *SMALL], r"notmodel"),
    "run truncated model weights": (["run", _p("truncated_model"), *SMALL], r"model\.safetensors"),
    "run random-bytes .pth": (["run", _p("root", "random.pth"), *SMALL], r"random\.pth"),
    # probe run: configs
    "run --config missing": ([*RUN, "--config", _t("absent.yaml")], r"config file not found"),
    "run --config syntax error": ([*RUN, "--config", _p("root", "bad.yaml")], r"bad\.yaml line 3, column 1: not valid"),
    "run --config n_seeds eight": ([*RUN, "--config", _p("root", "eight.yaml")], r"line 3.*n_seeds must be an integer"),
    "run --config unknown key": ([*RUN, "--config", _p("root", "unknown.yaml")], r"n_seed"),
    # probe run: output folders
    "run --out is a file": ([*RUN, "--out", _p("root", "afile")], r"afile is a file, not a folder"),
    "run --out under a file": ([*RUN, "--out", _p("root", "afile/o")], r"afile is a file, not a folder"),
    "run other settings onto a finished run": (["run", B, "--seeds", "5", "--max-steps", "20", "--quiet", "--out",
                                                _p("done")], r"other settings.*--overwrite"),
    "run into foreign files": ([*RUN, "--out", _p("root", "notmodel")], r"--overwrite"),
    "run while another writer holds --out": ([*RUN, "--out", _locked("busy")], r"in use by another probe process"),
    "dictionary while another writer holds --out": ([*DICT, "--datasets", _p("root", "good.npz"), "--out",
                                                     _locked("busy")], r"in use by another probe process"),
    # probe dictionary
    "dictionary another model's attractors": ([*DICT, "--datasets", _p("root", "good.npz"), "--attractors",
                                               _p("other")], r"another model|other model|made by"),
    "dictionary --attractors not a result": ([*DICT, "--datasets", _p("root", "good.npz"), "--attractors",
                                              _p("root", "notmodel")], r"not a probe result"),
    "dictionary --attractors truncated": ([*DICT, "--datasets", _p("root", "good.npz"), "--attractors",
                                           _p("truncated_set")], r"truncated"),
    "dictionary --attractors toy result": ([*DICT, "--datasets", _p("root", "good.npz"), "--attractors",
                                            _p("toy")], r"BadInputsToy"),
    "dictionary unknown dataset": ([*DICT, "--datasets", "no-such-set"], r"no-such-set"),
    "dictionary NaN images": ([*DICT, "--datasets", NPZ], r"nan\.npz.*(NaN|not finite|non-finite)"),
    "dictionary Inf images": ([*DICT, "--datasets", _p("root", "inf.npz")], r"inf\.npz.*(Inf|not finite|non-finite)"),
    "dictionary truncated .npz": ([*DICT, "--datasets", _p("root", "truncated.npz")], r"truncated\.npz"),
    "dictionary text file as .npz": ([*DICT, "--datasets", _p("root", "text.npz")], r"text\.npz"),
    "dictionary --sparsity 0": ([*DICT, "--datasets", _p("root", "good.npz"), "--sparsity", "0"], r"sparsity"),
    "dictionary --sparsity 2": ([*DICT, "--datasets", _p("root", "good.npz"), "--sparsity", "2"], r"sparsity"),
    "dictionary --coder ridge": ([*DICT, "--datasets", _p("root", "good.npz"), "--coder", "ridge"], r"coder"),
    # probe ood
    "ood NaN train images": ([*OOD, "--train", NPZ, "--test-in", _p("root", "good.npz"), "--test-out",
                              _p("root", "shifted.npz")], r"nan\.npz"),
    "ood unknown test set": ([*OOD, "--train", _p("root", "good.npz"), "--test-in", _p("root", "good.npz"),
                              "--test-out", "no-such-set"], r"no-such-set"),
    "ood another model's reference": ([*OOD, "--train", _p("root", "good.npz"), "--test-in",
                                       _p("root", "good.npz"), "--test-out", _p("root", "shifted.npz"),
                                       "--reference", _p("other")], r"another model|other model|made by"),
    # probe compare, memorization, basins, features, info, train, report
    "compare with no such model": (["compare", B, "no/such/model", "--quiet"], r"no/such/model"),
    "memorization --bottlenecks 0,abc": (["memorization", "--bottlenecks", "0,abc", "--quiet"], r"bottlenecks"),
    "memorization --bottlenecks 0": (["memorization", "--bottlenecks", "0", "--quiet"], r"bottleneck"),
    "basins unknown image set": (["basins", B, "--images", "no-such-set", "--quiet"], r"no-such-set"),
    "basins NaN images": (["basins", B, "--images", NPZ, "--max-steps", "20", "--quiet"], r"nan\.npz"),
    "features --feature -1": (["features", B, "--images", _p("root", "good.npz"), "--feature=-1", "--quiet"],
                              r"feature"),
    "features --feature 999": (["features", B, "--images", _p("root", "good.npz"), "--feature", "999",
                                "--max-steps", "20", "--quiet"], r"feature"),
    "info no such model": (["info", "no/such/model"], r"no/such/model"),
    "info random-bytes .pth": (["info", _p("root", "random.pth")], r"random\.pth"),
    "train unknown dataset": (["train", "--dataset", "no-such-set", "--epochs", "1", "--out", _t("tr")],
                              r"no-such-set"),
    "train --epochs 0": (["train", "--dataset", _p("root", "good.npz"), "--epochs", "0", "--out", _t("tr")],
                         r"epochs"),
    "report on a folder that is no result": (["report", _p("root", "notmodel")], r"notmodel"),
    "report on a missing folder": (["report", _t("absent")], r"absent"),
    "fit-decoder not an encoder": (["fit-decoder", "no-such-encoder", "--images", _p("root", "good.npz"),
                                    "--out", _t("fd")], r"no-such-encoder"),
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_bad_input_is_one_line(guarded, tmp_path, name):
    argv, words = COMMANDS[name]
    rc, _, err = cli(*[str(a(guarded, tmp_path)) if callable(a) else str(a) for a in argv])
    line = the_line(err)
    assert rc == 2, f"exit code {rc}: {line}"
    assert re.search(words, line), line
    assert "weights_only=False" not in line and "allow_pickle" not in line


def test_same_command_again_reuses_the_finished_run(guarded):
    rc, out, err = cli(*[a for a in RUN if a != "--quiet"], "--out", str(guarded["done"]))
    assert rc == 0 and "reusing" in err + out, err


def test_a_budget_too_short_to_tell_is_undetermined_not_expansive(guarded, tmp_path):
    rc, out, err = cli("run", B, "--seeds", "4", "--max-steps", "3", "--out", str(tmp_path / "o"))
    assert rc == 0, err
    assert "undetermined" in out and "expansive" not in out, out


def test_checkpoint_every_zero_stays_zero(guarded, tmp_path):
    import json

    rc, out, err = cli(*RUN, "--checkpoint-every", "0", "--json", "--out", str(tmp_path / "o"))
    assert rc == 0, err
    assert json.loads(out)["config"]["checkpoint_every"] == 0


def test_version(guarded):
    rc, out, _ = cli("--version")
    assert rc == 0 and out.startswith("probe ")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda(guarded):
    rc, _, err = cli(*RUN, "--device", "cuda")
    assert rc == 2 and re.search(r"CUDA is not available", the_line(err))


# -- full and read-only disks (a small tmpfs; root only) ------------------------------------------
@pytest.fixture
def tmpfs(tmp_path):
    """Mount a tmpfs: ``mount(size, ro=False) -> Path``; unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("full and read-only disks need a tmpfs mount: run the tests as root")
    mounted = []

    def mount(size: str = "64k", ro: bool = False) -> Path:
        where = tmp_path / f"fs{len(mounted)}"
        where.mkdir()
        opts = f"size={size}" + (",ro" if ro else "")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_full_disk_write_is_one_line_and_leaves_no_temp(tmpfs):
    from probe.io import save_tensors

    fs = tmpfs("64k")
    (fs / "kept.json").write_text("{}")
    with pytest.raises(ProbeError) as e:
        save_tensors(fs / "big.safetensors", {"x": torch.zeros(100_000)}, what="the attractor set")
    msg = str(e.value)
    assert "\n" not in msg and "could not save the attractor set" in msg and "disk is full" in msg
    assert "kept.json" in msg and sorted(p.name for p in fs.iterdir()) == ["kept.json"]


def test_read_only_disk_is_refused_before_any_work(tmpfs):
    fs = tmpfs("64k", ro=True)
    rc, _, err = cli(*RUN, "--out", str(fs / "o"))
    assert rc == 2 and "read-only" in the_line(err)


def test_full_disk_during_a_run_is_one_line(guarded, tmpfs):
    fs = tmpfs("12k")
    rc, _, err = cli(*RUN, "--out", str(fs / "o"))
    line = the_line(err)
    assert rc == 2 and "disk is full" in line, line
    assert not list(fs.rglob("*.tmp"))


def test_overwrite_on_a_full_disk_keeps_the_old_result(guarded, tmpfs):
    fs = tmpfs("96k")
    shutil.copytree(guarded["done"], fs / "o")
    before = snapshot(fs / "o")
    big = fs / "filler"
    try:
        big.write_bytes(b"x" * 90_000)
    except OSError:
        pass
    rc, _, err = cli("run", B, "--seeds", "6", "--max-steps", "20", "--quiet", "--overwrite", "--out", str(fs / "o"))
    assert rc == 2 and "disk is full" in the_line(err)
    assert snapshot(fs / "o") == before


# -- interrupts and real processes ---------------------------------------------------------------
def test_ctrl_c_is_one_line_and_the_run_resumes(guarded, tmp_path, monkeypatch):
    import probe.field

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    out = tmp_path / "o"
    with monkeypatch.context() as m:
        m.setattr(probe.field, "find_attractors", interrupted)
        rc, _, err = cli(*RUN, "--out", str(out))
    assert rc == 130 and "interrupted" in the_line(err) and str(out) in the_line(err)
    assert not (out / ".lock").exists() and not list(out.rglob("*.tmp"))
    rc, _, err = cli(*[a for a in RUN if a != "--quiet"], "--out", str(out))
    assert rc == 0 and "resuming" in err


@pytest.mark.parametrize("argv, rc, words", [
    (["run", B, "--seeds", "eight"], 2, r"n_seeds must be an integer"),
    (["info", "no/such/model"], 2, r"no/such/model"),
    (["--version"], 0, None),
])
def test_the_probe_process(guarded, argv, rc, words):
    r = subprocess.run([sys.executable, "-m", "probe.cli.main", *argv], capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == rc, r.stderr
    if words is None:
        assert r.stdout.startswith("probe ")
    else:
        assert re.search(words, the_line(r.stderr))
