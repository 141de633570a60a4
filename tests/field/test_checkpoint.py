"""Resume: a run killed half-way and started again ends with the attractors of an uninterrupted run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import field_maps as fm
import pytest
import torch

import probe
from probe.errors import ProbeError
from probe.field import AttractorSet, find_attractors
from probe.field.checkpoint import path_for

SETTINGS: dict[str, Any] = dict(n_seeds=48, tol=1e-10, max_steps=200, batch_size=8, power_iters=10, probe_points=2)
SCRIPT = Path(__file__).resolve().parent / "field_script.py"


def _counting(m, stop_after=None):
    calls = {"n": 0}

    def f(z):
        calls["n"] += 1
        if stop_after is not None and calls["n"] > stop_after:
            raise KeyboardInterrupt  # what Ctrl-C does mid-run
        return m.f(z)

    return probe.wrap(f, lambda z: z, (5,), check_inputs=False, name=m.name), calls


def _same(a: AttractorSet, b: AttractorSet) -> None:
    """The same attractors and basins; end points within 1e-5 relative and steps within a step or two
    (a resumed run batches the same seeds the same way, but nothing here relies on bitwise equality)."""
    for name in ("counts", "assignment", "status", "stable"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    for name in ("points", "end_points"):
        assert torch.allclose(getattr(a, name), getattr(b, name), rtol=1e-5, atol=1e-6), name
    assert (a.steps - b.steps).abs().max() <= 2
    assert abs(a.timing["f_evals"] - b.timing["f_evals"]) <= 2 * len(a.steps)


def test_interrupted_run_resumes_to_the_same_attractors(tmp_path):
    m, *_ = fm.hopfield()
    full_map, full_calls = _counting(m)
    full = find_attractors(full_map, **SETTINGS)
    killed, _ = _counting(m, stop_after=40)  # past the first checkpoint (6 batches a step)
    with pytest.raises(KeyboardInterrupt):
        find_attractors(killed, out=tmp_path, checkpoint_every=3, **SETTINGS)
    assert path_for(tmp_path).is_file()
    again, calls = _counting(m)
    resumed = find_attractors(again, out=tmp_path, checkpoint_every=3, **SETTINGS)
    assert calls["n"] < full_calls["n"]  # it did not start over
    _same(resumed, full)
    _same(AttractorSet.load(tmp_path), full)
    assert not path_for(tmp_path).exists()  # a finished run leaves no checkpoint behind


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    m, *_ = fm.hopfield()
    killed, _ = _counting(m, stop_after=4)
    with pytest.raises(KeyboardInterrupt):
        find_attractors(killed, out=tmp_path, checkpoint_every=2, **SETTINGS)
    with pytest.raises(ProbeError, match="checkpoint of a different run"):
        find_attractors(m, out=tmp_path, checkpoint_every=2, **{**SETTINGS, "tol": 1e-9})


def test_killed_process_resumes_with_the_same_command(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, str(SCRIPT), str(out), "--seeds", "48", "--batch-size", "8", "--checkpoint-every", "3"]
    proc = subprocess.Popen(cmd + ["--slow", "0.2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not path_for(out).is_file() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert path_for(out).is_file(), "no checkpoint appeared"
        os.kill(proc.pid, signal.SIGKILL)  # no chance to clean up
    finally:
        proc.wait()
    assert not (out / "meta.json").exists()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    m, *_ = fm.hopfield()
    _same(AttractorSet.load(out), find_attractors(m, **SETTINGS))
