"""Two processes under accelerate reproduce the one-process attractors for the same seeds."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import field_maps as fm
import pytest
import torch

from probe.field import AttractorSet, find_attractors
from probe.field.distributed import shard

SCRIPT = Path(__file__).resolve().parent / "field_script.py"


def test_shards_cover_the_seeds_in_order():
    for n, size in ((10, 3), (2, 4), (4096, 7)):
        parts = [shard(n, r, size) for r in range(size)]
        assert parts[0][0] == 0 and parts[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(parts, parts[1:], strict=False))
        assert max(b - a for a, b in parts) - min(b - a for a, b in parts) <= 1


@pytest.mark.skipif(shutil.which("accelerate") is None and not os.path.exists(Path(sys.executable).parent / "accelerate"),
                    reason="accelerate launcher not installed")
def test_two_processes_reproduce_one_process(tmp_path):
    launcher = shutil.which("accelerate") or str(Path(sys.executable).parent / "accelerate")
    # --multi_gpu makes accelerate start the processes through torchrun; on a CPU-only machine
    # they form a gloo group (with --cpu, accelerate's simple launcher would start just one)
    # One thread per process: two ranks each starting a full OpenMP pool on a loaded 2-core
    # machine oversubscribe it (a rank was once killed by SIGABRT under load).
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    cmd = [launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
           str(SCRIPT), str(tmp_path), "--seeds", "48"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    two = AttractorSet.load(tmp_path)
    m, *_ = fm.hopfield()
    one = find_attractors(m, n_seeds=48, tol=1e-10, max_steps=200, power_iters=10, probe_points=2)
    assert two.timing["processes"] == 2 and one.timing["processes"] == 1
    assert len(two) == len(one) == 3
    # The same attractors and basins; steps and end points only up to rounding (shards batch
    # the seeds differently, and batched kernels round differently by batch size and CPU).
    for name in ("counts", "assignment", "status", "stable"):
        assert torch.equal(getattr(two, name), getattr(one, name)), name
    assert (two.steps - one.steps).abs().max() <= 1
    assert torch.allclose(two.points, one.points, rtol=1e-5, atol=1e-6)
    assert torch.allclose(two.end_points, one.end_points, rtol=1e-5, atol=1e-6)
    assert two.diagnosis.verdict == one.diagnosis.verdict
