"""Run find_attractors on a toy map into OUT: run by the tests as a subprocess, with plain
``python`` or under ``accelerate launch``, and killed half-way by the resume test."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import field_maps  # noqa: E402

from probe.field import find_attractors  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--seeds", type=int, default=48)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--slow", type=float, default=0.0, help="seconds of sleep per f call")
    p.add_argument("--checkpoint-every", type=int, default=None)
    a = p.parse_args()
    m, *_ = field_maps.hopfield()
    if a.slow:
        m = field_maps.slow(m, a.slow)
    find_attractors(m, n_seeds=a.seeds, tol=1e-10, max_steps=200, batch_size=a.batch_size, out=a.out,
                    checkpoint_every=a.checkpoint_every, power_iters=10, probe_points=2)


if __name__ == "__main__":
    main()
