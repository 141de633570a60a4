"""One hub module: models and datasets read the same offline switch and change no library's constants."""
from __future__ import annotations

import pytest

import probe
from probe import ProbeError
from probe.data import hub as data_hub
from probe.data import load_images
from probe.maps import hub as maps_hub


def test_models_and_datasets_share_the_switches(monkeypatch):
    assert maps_hub.offline is data_hub.offline and maps_hub.endpoint is data_hub.endpoint
    for var in data_hub.OFFLINE_VARS:
        monkeypatch.delenv(var, raising=False)
    assert not data_hub.offline()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert data_hub.offline()
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9/")
    assert data_hub.endpoint() == "http://127.0.0.1:9"


def test_offline_fails_in_one_line_and_flips_no_constant(monkeypatch, tmp_path):
    datasets = pytest.importorskip("datasets")
    import huggingface_hub.constants as hub_constants

    before = datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ProbeError, match="not in the local HF cache and HF_HUB_OFFLINE") as e:
        load_images("hf:someone/not-cached-xyz")
    assert "\n" not in str(e.value)
    with pytest.raises(ProbeError, match="not in the local Hub cache and HF_HUB_OFFLINE") as e:
        probe.load("someone/not-cached-vae-xyz", cache_dir=str(tmp_path))
    assert "\n" not in str(e.value)
    assert (datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE) == before


def test_unreachable_names_the_reason(monkeypatch):
    assert data_hub.unreachable("http://127.0.0.1:9", timeout=1.0) is not None  # the discard port: nothing listens
