"""The shared flag groups: generated from the configs, one precedence rule, one-line errors, --json/--quiet."""
from __future__ import annotations

import argparse
import dataclasses
import json

import pytest
import torch

from probe.cli.flags import config_from_args, resolve_out
from probe.cli.main import build_parser, main
from probe.field import FieldConfig

# field -> (a YAML value, a different flag value); every FieldConfig field is covered
VALUES = {"n_seeds": (5, 7), "seed": (1, 2), "seed_dist": ("data", "normal"), "resolution": (32, 64),
          "tol": (1e-5, 1e-4), "rtol": (1e-3, 1e-2), "max_steps": (10, 20), "max_period": (8, 16),
          "merge": ("euclidean", "cosine"), "merge_threshold": (0.9, 0.95), "solver": ("anderson", "mixed"),
          "dtype": ("fp64", "bf16"), "compile": (True, False), "batch_size": (8, 16), "device": ("cuda:1", "cpu"),
          "threads": (1, 2), "power_iters": (5, 6), "probe_points": (2, 3), "checkpoint_every": (0, 50)}
FLAG = {"n_seeds": "--seeds"}


def _flag(name: str, value) -> list[str]:
    if isinstance(value, bool):
        return [f"--{'' if value else 'no-'}{name.replace('_', '-')}"]
    return [FLAG.get(name, "--" + name.replace("_", "-")), str(value)]


def _parse(argv: list[str]):
    return build_parser().parse_args(argv)


def test_every_field_config_field_has_a_case():
    assert set(VALUES) == {f.name for f in dataclasses.fields(FieldConfig)}


@pytest.mark.parametrize("name", sorted(VALUES))
def test_flag_beats_yaml_beats_default_for_every_field(name, tmp_path):
    from probe.cli.run import RunConfig

    yaml_value, flag_value = VALUES[name]
    path = tmp_path / "run.yaml"
    path.write_text(f"run:\n  field:\n    {name}: {json.dumps(yaml_value)}\n")
    default = getattr(RunConfig().field, name)
    assert getattr(config_from_args(RunConfig, _parse(["run", "m"])).field, name) == default
    assert getattr(config_from_args(RunConfig, _parse(["run", "m", "--config", str(path)])).field, name) == yaml_value
    args = _parse(["run", "m", "--config", str(path), *_flag(name, flag_value)])
    assert getattr(config_from_args(RunConfig, args).field, name) == flag_value


def test_nested_and_shared_yaml_sections_keep_the_probe_defaults(tmp_path):
    from probe.probes.compare import CompareConfig

    path = tmp_path / "all.yaml"
    path.write_text("field:\n  tol: 1e-5\n  threads: 1\ncompare:\n  sparsity: 0.1\n  field:\n    threads: 2\n")
    cfg = config_from_args(CompareConfig, _parse(["compare", "a", "b", "--config", str(path), "--max-steps", "9"]))
    assert (cfg.sparsity, cfg.field.tol, cfg.field.threads, cfg.field.max_steps) == (0.1, 1e-5, 2, 9)
    assert cfg.field.n_seeds == 1024  # compare's own default, not FieldConfig's 4096


@pytest.mark.parametrize("command, cls", [
    (["run", "m"], "probe.cli.run:RunConfig"),
    (["dictionary", "m", "--datasets", "digits"], "probe.probes.dictionary:DictionaryConfig"),
    (["compare", "a", "b"], "probe.probes.compare:CompareConfig"),
    (["ood", "m", "--train", "digits", "--test-in", "digits", "--test-out", "noise:uniform"],
     "probe.probes.ood:OODConfig"),
])
def test_solver_dtype_and_threads_reach_the_config(command, cls):
    import importlib

    module, name = cls.split(":")
    C = getattr(importlib.import_module(module), name)
    cfg = config_from_args(C, _parse([*command, "--solver", "anderson", "--dtype", "bf16", "--threads", "2"]))
    assert (cfg.field.solver, cfg.field.dtype, cfg.field.threads) == ("anderson", "bf16", 2)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from probe.maps.convae import ConvAE, ConvAEConfig

    with torch.random.fork_rng():
        torch.manual_seed(0)
        folder = tmp_path_factory.mktemp("convae")
        ConvAE(ConvAEConfig(image_size=16, image_channels=1, width=4, bottleneck=4)).save(folder)
    return folder


QUICK = ["--seeds", "6", "--max-steps", "30", "--power-iters", "4", "--probe-points", "1"]


def test_a_small_real_run_with_anderson_bf16_and_two_threads(model_dir, tmp_path, capsys):
    from probe.field import AttractorSet

    out = tmp_path / "out"
    before = torch.get_num_threads()
    try:
        rc = main(["run", str(model_dir), *QUICK, "--solver", "anderson", "--dtype", "bf16", "--threads", "2",
                   "--out", str(out), "--json"])
        assert torch.get_num_threads() == 2  # the command's process runs on --threads
    finally:
        torch.set_num_threads(before)  # tests share one process
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)  # --json: stdout is one JSON object
    assert summary["config"]["solver"] == "anderson" and summary["config"]["dtype"] == "bf16"
    assert AttractorSet.load(out).config["threads"] == 2


def test_negative_tol_parses_as_a_value_and_is_refused_in_one_line(model_dir, tmp_path, capsys):
    assert main(["run", str(model_dir), "--tol", "-1e-6", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tol" in err[0] and "> 0" in err[0] and "expected one argument" not in err[0]


def test_quiet_prints_nothing_and_a_rerun_reuses_the_result(model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", str(model_dir), *QUICK, "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")
    assert main(["run", str(model_dir), *QUICK, "--out", str(out)]) == 0
    assert "reusing the finished result" in capsys.readouterr().err
    assert main(["run", str(model_dir), *QUICK[:2], "--max-steps", "31", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other settings" in err[0] and "--overwrite" in err[0]
    assert main(["run", str(model_dir), *QUICK[:2], "--max-steps", "31", "--out", str(out), "--overwrite",
                 "--quiet"]) == 0


def test_default_output_folders_differ_between_models(tmp_path):
    def out(*specs):
        return resolve_out(argparse.Namespace(out=None), "compare", *specs)

    assert str(out("builtin:fmnist-k16")) == "compare-out/fmnist-k16"
    a, b = out(str(tmp_path / "x" / "model")), out(str(tmp_path / "y" / "model"))
    assert a != b and a.name.startswith("model-")  # same folder name, other path: another folder
    assert out("a", "b") != out("b", "a")


def test_interrupt_names_only_what_exists(model_dir, tmp_path, capsys, monkeypatch):
    import probe.field

    def stop(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(probe.field, "find_attractors", stop)
    out = tmp_path / "out"
    assert main(["run", str(model_dir), "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "checkpoint" not in err and "holds nothing finished" in err
    (out / "checkpoint").mkdir()
    assert main(["run", str(model_dir), "--out", str(out)]) == 130
    assert f"checkpoint in {out / 'checkpoint'}" in capsys.readouterr().err


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("probe ")
