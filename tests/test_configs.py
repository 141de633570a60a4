"""Every YAML file in configs/ fills its command's config dataclass and equals the coded defaults."""
from __future__ import annotations

import argparse
import dataclasses
import importlib
from pathlib import Path
from typing import Any

import pytest

from probe.cli.flags import config_from_args
from probe.config import apply, build

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
CLASSES = {"run": "probe.cli.run:RunConfig", "dictionary": "probe.probes.dictionary:DictionaryConfig",
           "ood": "probe.probes.ood:OODConfig", "compare": "probe.probes.compare:CompareConfig",
           "memorization": "probe.probes.memorization_study:MemorizationConfig",
           "basins": "probe.probes.basins:BasinsConfig", "train": "probe.train:TrainConfig",
           "fit_decoder": "probe.maps.surrogate:FitConfig", "demo": "probe.cli.demo:DemoConfig"}


def _cls(name: str) -> Any:
    module, cls = CLASSES[name].split(":")
    return getattr(importlib.import_module(module), cls)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_config_file_loads_to_the_paper_defaults(name):
    C = _cls(name)
    args = argparse.Namespace(config=str(CONFIGS / f"{name}.yaml"))
    assert config_from_args(C, args) == C(), f"configs/{name}.yaml drifted from {C.__name__}'s defaults"
    assert build(C, CONFIGS / f"{name}.yaml") == C()  # the plain loader reads the nested field section too
    assert dataclasses.is_dataclass(C)


def test_every_config_file_has_its_class():
    assert {p.stem for p in CONFIGS.glob("*.yaml")} == set(CLASSES)


def test_no_probe_config_copies_an_iteration_setting():
    from probe.field.config import FieldConfig

    field_names = {f.name for f in dataclasses.fields(FieldConfig)}
    for name in CLASSES:
        C = _cls(name)
        names = {f.name for f in dataclasses.fields(C)}
        if "field" not in names:
            continue
        assert not (names & field_names), f"{C.__name__} copies {sorted(names & field_names)} of FieldConfig"
        assert isinstance(C().field, FieldConfig)


def test_a_field_mapping_becomes_a_field_config_and_keeps_the_probe_default():
    from probe.probes.compare import CompareConfig

    cfg = apply(CompareConfig, CompareConfig(), {"field": {"tol": "1e-5"}})
    assert cfg.field.tol == 1e-5 and cfg.field.n_seeds == 1024  # YAML 1.1 reads 1e-5 as text: typed here
    given: dict[str, Any] = {"field": {"n_seeds": 8}}  # a mapping, as YAML or Python users give it
    assert CompareConfig(**given).field.n_seeds == 8
