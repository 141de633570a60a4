"""The Result contract with a toy subclass: round trip, dispatch on kind, one-line errors for bad folders."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

import pytest
import torch

from probe.errors import ProbeError
from probe.result import KNOWN_KINDS, Result, load_result, model_fingerprint, same_model


@dataclass
class ToyResult(Result):
    points: torch.Tensor
    label: str
    config: dict

    version = 2

    def _tensors(self):
        return {"points": self.points}

    def _meta(self):
        return {"config": self.config, "model": {"class": "Toy", "checksum": "abc", "latent_shape": [3]},
                "label": self.label, "n": len(self.points)}

    @classmethod
    def _from_saved(cls, tensors, meta):
        return cls(points=tensors["points"], label=meta["label"], config=meta["config"])

    def to_rows(self):
        return [{"index": i, "norm": float(p.norm())} for i, p in enumerate(self.points)]


@dataclass
class NoTensors(Result):
    rows: list

    def _meta(self):
        return {"config": {}, "model": None, "rows": self.rows}

    @classmethod
    def _from_saved(cls, tensors, meta):
        assert tensors == {}
        return cls(rows=meta["rows"])


@pytest.fixture
def toy(tmp_path):
    r = ToyResult(points=torch.randn(4, 3), label="a", config={"tol": 1e-6})
    return r, r.save(tmp_path / "toy")


def one_line(e) -> str:
    msg = str(e.value)
    assert "\n" not in msg and msg
    return msg


def test_round_trip_and_dispatch(toy):
    r, folder = toy
    back = load_result(folder)
    assert type(back) is ToyResult and back.label == "a" and torch.equal(back.points, r.points)
    assert ToyResult.load(folder).label == "a" and Result.load(folder).kind == "ToyResult"
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["kind"] == "ToyResult" and meta["version"] == 2 and meta["config"] == {"tol": 1e-6}
    assert meta["model"]["checksum"] == "abc" and meta["files"]["tensors.safetensors"]["bytes"] > 0
    assert r.kind == "ToyResult" and r.meta["config"] == {"tol": 1e-6} and r.meta == r.header()


def test_result_without_tensors_writes_no_tensor_file(tmp_path):
    folder = NoTensors(rows=[1, 2]).save(tmp_path / "n")
    assert not (folder / "tensors.safetensors").exists()
    assert NoTensors.load(folder).rows == [1, 2] and type(load_result(folder)) is NoTensors


def test_rows_and_csv(toy, tmp_path):
    r, _ = toy
    text = r.to_csv(tmp_path / "t.csv").read_text().splitlines()
    assert text[0] == "index,norm" and len(text) == 5
    assert NoTensors(rows=[]).to_rows() == [{"kind": "NoTensors"}]


def test_saved_files_are_0644_and_no_temp_left(toy):
    import os
    import stat

    _, folder = toy
    old = os.umask(0o022)
    os.umask(old)
    for f in folder.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~old, f
    assert not [f for f in folder.iterdir() if f.name.endswith(".tmp")]


def test_meta_must_carry_config_and_model(tmp_path):
    @dataclass
    class Bad(Result):
        def _meta(self):
            return {"config": {}}

    with pytest.raises(TypeError, match="model"):
        Bad().save(tmp_path / "b")


def test_plot_hook_is_one_line():
    with pytest.raises(ProbeError, match="NoTensors has no plot"):
        NoTensors(rows=[]).plot()


def _corrupt(folder, how):
    meta, tens = folder / "meta.json", folder / "tensors.safetensors"
    if how == "truncated tensors":
        tens.write_bytes(tens.read_bytes()[:-20])
    elif how == "tensors of another run":
        ToyResult(points=torch.ones(4, 3), label="b", config={}).save(folder.parent / "other")
        tens.write_bytes((folder.parent / "other" / "tensors.safetensors").read_bytes())
    elif how == "missing tensor file":
        tens.unlink()
    elif how == "missing meta key":
        m = json.loads(meta.read_text())
        del m["label"]
        meta.write_text(json.dumps(m))
    elif how == "newer version":
        m = json.loads(meta.read_text())
        m["version"] = 99
        meta.write_text(json.dumps(m))
    elif how == "unknown kind":
        m = json.loads(meta.read_text())
        m["kind"] = "Nonsense"
        meta.write_text(json.dumps(m))
    elif how == "meta not json":
        meta.write_text("{not json")
    elif how == "meta not a mapping":
        meta.write_text("[1, 2]")
    elif how == "no meta":
        meta.unlink()
    elif how == "unfinished run":
        meta.unlink()
        (folder / "checkpoint").mkdir()
    elif how == "a file":
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
        folder.write_text("x")
    elif how == "absent":
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
    elif how == "wrong tensor file":
        tens.write_text("hello, not a tensor file")
        m = json.loads(meta.read_text())
        m["files"]["tensors.safetensors"]["bytes"] = tens.stat().st_size
        meta.write_text(json.dumps(m))


@pytest.mark.parametrize("how, words", [
    ("truncated tensors", "truncated"), ("tensors of another run", "does not belong"),
    ("missing tensor file", "missing"), ("missing meta key", "'label'"), ("newer version", "newer"),
    ("unknown kind", "does not know"), ("meta not json", "not valid JSON"), ("meta not a mapping", "no result kind"),
    ("no meta", "not a probe result"), ("unfinished run", "unfinished run"), ("a file", "is a file"),
    ("absent", "does not exist"), ("wrong tensor file", "damaged"),
])
def test_bad_folder_is_one_line_naming_it(toy, how, words):
    _, folder = toy
    _corrupt(folder, how)
    with pytest.raises(ProbeError) as e:
        load_result(folder)
    msg = one_line(e)
    assert words in msg and str(folder) in msg


def test_wrong_kind_names_both(toy):
    _, folder = toy
    with pytest.raises(ProbeError) as e:
        NoTensors.load(folder)
    assert "holds a ToyResult, not a NoTensors" in one_line(e)


def test_fingerprints():
    class M:
        def fingerprint(self):
            return {"class": "M", "checksum": "1", "latent_shape": (4,)}

    fp = model_fingerprint(M())
    assert fp == {"class": "M", "checksum": "1", "latent_shape": [4]}
    assert fp is not None and same_model(fp, dict(fp)) and not same_model(fp, {**fp, "checksum": "2"})
    sha = {"class": "ConvAE", "weights_sha256": "ab", "latent_shape": [16], "resolution": 28}
    assert same_model(sha, {**sha, "resolution": 64, "latent_shape": [4, 8, 8]})
    assert not same_model(sha, {**sha, "weights_sha256": "cd"}) and not same_model(sha, {**sha, "class": "Other"})
    empty = {**sha, "name": "f", "config": {"parameters": 0}}  # functions without weights all hash alike
    assert same_model(empty, dict(empty)) and not same_model(empty, {**empty, "name": "g"})
    assert not same_model(fp, None) and model_fingerprint(None) is None


def test_known_kinds_are_lazy_and_result_imports_no_upper_layer():
    code = ("import sys, probe; before = set(sys.modules); import probe.result; bad = [m for m in set(sys.modules) - "
            "before if m.startswith(('probe.field', 'probe.probes', 'probe.maps', 'probe.data', 'probe.sparse', "
            "'probe.cli'))]; print(sorted(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
    assert KNOWN_KINDS["AttractorSet"] == "probe.field.attractors"


@pytest.mark.parametrize("kind", sorted(KNOWN_KINDS))
def test_every_known_kind_is_a_result_of_that_name(kind):
    import importlib

    cls = getattr(importlib.import_module(KNOWN_KINDS[kind]), kind, None)
    assert cls is not None, f"{KNOWN_KINDS[kind]} defines no {kind}"
    assert issubclass(cls, Result) and cls.kind == kind, f"{kind} does not subclass probe.result.Result yet"
