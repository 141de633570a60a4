"""Configs from YAML and flags: declared types, nested sections, one precedence rule, one-line errors."""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Literal

import pytest

from probe.config import FlagSpec, apply, build, convert, field, first_line, flag_specs
from probe.errors import ConfigError, ProbeError
from probe.field.config import FieldConfig


@dataclass(frozen=True)
class Outer:
    section = "toy"

    atoms: int | None = field(None, "number of atoms")
    seed: int = field(0, "the outer seed (clashes with field.seed)")
    coder: Literal["omp", "lasso"] = field("omp", "sparse coder")
    sizes: list[int] = field([1, 2], "sizes")
    field: FieldConfig = field(FieldConfig(), "the attractor search")

    def __post_init__(self):
        if self.atoms is not None and self.atoms < 1:
            raise ValueError("atoms must be >= 1")


def yaml(tmp_path, text: str, name: str = "c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


# YAML text, flag text, and what each must give, for every FieldConfig field
VALUES = {
    "n_seeds": ("3", "5", 3, 5), "seed": ("1", "2", 1, 2), "seed_dist": ("data", "normal", "data", "normal"),
    "resolution": ("32", "48", 32, 48), "tol": ("1e-3", "1e-4", 1e-3, 1e-4), "rtol": ("1e-2", "1e-1", 1e-2, 0.1),
    "max_steps": ("7", "9", 7, 9), "max_period": ("2", "3", 2, 3),
    "merge": ("euclidean", "cosine", "euclidean", "cosine"),
    "merge_threshold": ("0.5", "0.7", 0.5, 0.7), "solver": ("anderson", "mixed", "anderson", "mixed"),
    "dtype": ("fp64", "bf16", "fp64", "bf16"), "compile": ("true", "false", True, False),
    "batch_size": ("4", "6", 4, 6), "device": ("cpu", "cuda:1", "cpu", "cuda:1"), "threads": ("1", "2", 1, 2),
    "power_iters": ("3", "4", 3, 4), "probe_points": ("1", "0", 1, 0), "checkpoint_every": ("0", "7", 0, 7),
}


def test_every_field_config_field_has_precedence_values():
    assert set(VALUES) == {f.name for f in dataclasses.fields(FieldConfig)}


@pytest.mark.parametrize("name", sorted(VALUES))
def test_precedence_flag_over_yaml_over_default(tmp_path, name):
    y, flag, want_y, want_flag = VALUES[name]
    spec = next(s for s in flag_specs(FieldConfig) if s.path == (name,))
    default = getattr(FieldConfig(), name)
    path = yaml(tmp_path, f"{name}: {y}\n")
    assert getattr(build(FieldConfig, None), name) == default
    assert getattr(build(FieldConfig, path), name) == want_y
    assert getattr(build(FieldConfig, path, **{name: spec.parse(flag)}), name) == want_flag
    assert getattr(build(FieldConfig, path, **{name: None}), name) == want_y  # an absent flag is None
    nested = yaml(tmp_path, f"toy:\n  field:\n    {name}: {y}\n", "n.yaml")  # the same inside a probe config
    outer = build(Outer, nested, **{f"field.{name}": spec.parse(flag)})
    assert getattr(outer.field, name) == want_flag and getattr(build(Outer, nested).field, name) == want_y


def test_yaml_1_1_exponent_is_a_float_and_zero_checkpoint_stays_zero(tmp_path):
    cfg = build(FieldConfig, yaml(tmp_path, "tol: 1e-6\ncheckpoint_every: 0\n"))
    assert cfg.tol == 1e-6 and isinstance(cfg.tol, float) and cfg.checkpoint_every == 0
    assert build(FieldConfig, checkpoint_every=0).checkpoint_every == 0


def test_nested_section_as_mapping_dotted_and_flat_keys(tmp_path):
    a = build(Outer, yaml(tmp_path, "field: {tol: 1e-6, n_seeds: 8}\natoms: 4\n", "a.yaml"))
    b = build(Outer, yaml(tmp_path, "tol: 1e-6\nn_seeds: 8\natoms: 4\n", "b.yaml"))
    c = build(Outer, yaml(tmp_path, "field.tol: 1e-6\nfield.n_seeds: 8\natoms: 4\n", "c.yaml"))
    assert a == b == c and a.field.tol == 1e-6 and a.field.n_seeds == 8 and a.atoms == 4
    clash = build(Outer, yaml(tmp_path, "seed: 3\nfield: {seed: 5}\n", "d.yaml"))
    assert clash.seed == 3 and clash.field.seed == 5  # a flat key belongs to the outer config first


def test_a_top_level_field_section_is_shared_by_every_command(tmp_path):
    path = yaml(tmp_path, "field: {max_steps: 50}\ntoy: {atoms: 2, field: {tol: 1e-4}}\nother: {x: 1}\n")
    cfg = build(Outer, path)
    assert cfg.atoms == 2 and cfg.field.max_steps == 50 and cfg.field.tol == 1e-4


@pytest.mark.parametrize("text, words", [
    ("n_seeds: eight\n", "line 1: n_seeds must be an integer, got 'eight'"),
    ("seed: 1\nn_seeds: 2.5\n", "line 2: n_seeds must be an integer, got 2.5"),
    ("tol: abc\n", "line 1: tol must be a number, got 'abc'"),
    ("tol: -1e-6\n", "tol must be a finite number > 0"),
    ("tol: .inf\n", "tol must be a finite number > 0"),
    ("compile: maybe\n", "compile must be true or false"),
    ("n_seed: 4\n", "did you mean n_seeds?"),
    ("merge: [1, 2\n", "line 2, column 1: not valid YAML"),
    ("- 1\n- 2\n", "must be a mapping"),
    ("n_seeds: 4\n\tseed: 1\n", "line 2"),
])
def test_bad_yaml_is_one_line_naming_the_field_or_line(tmp_path, text, words):
    path = yaml(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        build(FieldConfig, path)
    msg = str(e.value)
    assert "\n" not in msg and words in msg and str(path) in msg


@pytest.mark.parametrize("text, words", [
    ("toy: {sizes: '0,abc'}\n", "sizes must be a list"),
    ("toy: {coder: ridge}\n", "coder must be one of omp, lasso"),
    ("toy: {atoms: 0}\n", "atoms must be >= 1"),
    ("toy: {field: 3}\n", "field must be a mapping of FieldConfig settings"),
    ("toy: {field: {tol: x}}\n", "field.tol must be"),
    ("run: {n_seeds: 3}\n", "no 'toy:' section"),
])
def test_bad_nested_values_name_the_field(tmp_path, text, words):
    with pytest.raises(ConfigError) as e:
        build(Outer, yaml(tmp_path, text))
    assert words in str(e.value) and "\n" not in str(e.value)


def test_missing_file_and_overrides_are_checked_too(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        build(FieldConfig, tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="n_seeds must be an integer, got 2.5"):
        build(FieldConfig, n_seeds=2.5)
    with pytest.raises(ConfigError, match="unknown setting"):
        build(FieldConfig, nonsense=1)
    assert issubclass(ConfigError, ProbeError)


def test_apply_changes_a_base_instance():
    base = Outer(atoms=3)
    cfg = apply(Outer, base, {"tol": "1e-5", "coder": "lasso"})
    assert cfg.atoms == 3 and cfg.field.tol == 1e-5 and cfg.coder == "lasso"


def test_convert_types():
    assert convert(int | None, "none", "x") is None and convert(int, "1e3", "x") == 1000
    assert convert(list[int], "1, 2,3", "x") == [1, 2, 3] and convert(tuple[float, ...], [1, "2"], "x") == (1.0, 2.0)
    assert convert(bool, "off", "x") is False and convert(str, 3, "x") == "3"
    with pytest.raises(ConfigError, match="x must be an integer, got True"):
        convert(int, True, "x")


def test_flag_specs_cover_nested_fields_once():
    specs = {s.flag: s for s in flag_specs(Outer)}
    assert {"--atoms", "--seed", "--coder", "--sizes", "--tol", "--n-seeds", "--field-seed"} <= set(specs)
    assert specs["--field-seed"].path == ("field", "seed") and specs["--seed"].path == ("seed",)
    assert specs["--coder"].choices == ("omp", "lasso") and specs["--compile"].kind == "bool"
    assert specs["--sizes"].kind == "list" and specs["--n-seeds"].default == 4096
    assert len(specs) == len(list(flag_specs(Outer))) == 4 + len(VALUES)
    assert isinstance(specs["--tol"], FlagSpec) and specs["--tol"].dest == "field.tol"


def test_flag_parse_errors_name_the_flag_and_argparse_says_one_line(capsys):
    spec = next(s for s in flag_specs(FieldConfig) if s.flag == "--n-seeds")
    with pytest.raises(ConfigError, match="--n-seeds: n_seeds must be an integer, got 'eight'"):
        spec.parse("eight")
    parser = argparse.ArgumentParser(prog="probe run")
    parser.add_argument(spec.flag, dest=spec.dest, type=spec.argparse_type(), default=None)
    with pytest.raises(SystemExit) as e:
        parser.parse_args(["--n-seeds", "eight"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert e.value.code == 2 and err == "probe run: error: argument --n-seeds: n_seeds must be an integer, got 'eight'"
    merge = next(s for s in flag_specs(FieldConfig) if s.flag == "--merge")
    with pytest.raises(ConfigError, match="merge must be one of"):  # choices checked by the flag or the config
        build(FieldConfig, merge=merge.parse("nope"))


def test_first_line():
    assert first_line(ValueError("a\nb")) == "a" and first_line(KeyError()) == "KeyError"
    assert first_line(RuntimeError("  \n  x")) == "x"


def test_apply_of_yaml_values_names_the_line(tmp_path):
    from probe.config import yaml_values

    values, lines = yaml_values(Outer, yaml(tmp_path, "toy:\n  atoms: 2\n  field:\n    tol: x\n"))
    assert lines["field.tol"] == 4 and values["atoms"] == 2
    with pytest.raises(ConfigError, match=r"config c\.yaml line 4: field\.tol must be a number"):
        apply(Outer, None, values, "config c.yaml")
