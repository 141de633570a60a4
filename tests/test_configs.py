"""Every YAML file in configs/ fills its command's config dataclass and equals the coded defaults."""
from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import pytest

from probe.config import build

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
CLASSES = {"run": "probe.field.config:FieldConfig", "dictionary": "probe.probes.dictionary:DictionaryConfig",
           "ood": "probe.probes.ood:OODConfig", "compare": "probe.probes.compare:CompareConfig",
           "memorization": "probe.probes.memorization_study:MemorizationConfig",
           "basins": "probe.probes.basins:BasinsConfig", "train": "probe.train:TrainConfig",
           "fit_decoder": "probe.maps.surrogate:FitConfig"}


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_config_file_loads_to_the_paper_defaults(name):
    module, cls = CLASSES[name].split(":")
    C = getattr(importlib.import_module(module), cls)
    assert build(C, CONFIGS / f"{name}.yaml") == C(), f"configs/{name}.yaml drifted from {cls}'s defaults"
    assert {p.stem for p in CONFIGS.glob("*.yaml")} == set(CLASSES)
    assert dataclasses.is_dataclass(C)
