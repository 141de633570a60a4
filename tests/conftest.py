"""Shared fixtures: seeding, the CPU/GPU choice, and ../shared (skipped when absent)."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("PROBE_SHARED", REPO.parent / "shared"))


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu", help="device for tests (default cpu)")
    parser.addoption("--runslow", action="store_true", help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture
def device(request) -> str:
    return request.config.getoption("--device")


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared not found at {SHARED} (set PROBE_SHARED to its path)")
    return SHARED


@pytest.fixture(scope="session")
def taef2_dir(shared) -> Path:
    d = shared / "models" / "taef2"
    if not (d / "taef2_encoder.pth").is_file():
        pytest.skip(f"real TAEF2 weights not found in {d}")
    return d


@pytest.fixture(scope="session")
def heldout_dir(shared) -> Path:
    d = shared / "data" / "heldout"
    if not d.is_dir():
        pytest.skip(f"held-out image sets not found in {d}")
    return d
