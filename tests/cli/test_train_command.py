"""``probe train``: a tiny run from the command line, its --json summary, and the caller's RNG left alone."""
from __future__ import annotations

import json

import torch

from probe.cli.main import main


def test_train_from_the_command_line_keeps_the_global_rng(tmp_path, capsys):
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    out = tmp_path / "run"
    rc = main(["train", "--dataset", "digits", "--n-train", "40", "--n-test", "20", "--width", "2", "--bottleneck", "2",
               "--epochs", "1", "--batch-size", "20", "--out", str(out), "--json", "--quiet"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["epochs"] == 1 and (out / "train.json").is_file() and (out / "manifest.json").is_file()
    assert torch.equal(torch.random.get_rng_state(), state)  # train.py draws from its own seeded generator
