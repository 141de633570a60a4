"""Hub ids: only the autoencoder's files are fetched, and no network means a fast one-line error."""
from __future__ import annotations

import time

import pytest
import torch

import probe
from probe import ProbeError
from probe.maps.hub import download, select_files
from probe.maps.taesd import TAESDMap

# Layouts of real Hub repos (file lists as the Hub API returns them).
TAESD_REPO = ["README.md", "config.json", "diffusion_pytorch_model.safetensors", "taesd_decoder.pth",
              "taesd_decoder.safetensors", "taesd_encoder.pth", "taesd_encoder.safetensors", "images/demo.png"]
VAE_REPO = ["README.md", "config.json", "diffusion_pytorch_model.bin", "diffusion_pytorch_model.safetensors"]
PIPELINE = ["model_index.json", "v1-5-pruned.safetensors", "unet/config.json",
            "unet/diffusion_pytorch_model.safetensors", "vae/config.json", "vae/diffusion_pytorch_model.bin",
            "vae/diffusion_pytorch_model.fp16.safetensors", "vae/diffusion_pytorch_model.safetensors",
            "text_encoder/model.safetensors"]


def test_select_only_the_autoencoder_files():
    assert select_files(TAESD_REPO) == ["taesd_decoder.pth", "taesd_decoder.safetensors",
                                        "taesd_encoder.pth", "taesd_encoder.safetensors"]
    assert select_files(TAESD_REPO, subfolder="") == ["config.json", "diffusion_pytorch_model.safetensors"]
    assert select_files(VAE_REPO) == ["config.json", "diffusion_pytorch_model.safetensors"]
    # a pipeline: vae/ only, safetensors over .bin, the full-precision file over the fp16 variant,
    # never the 4 GB single-file checkpoint at the root
    assert select_files(PIPELINE) == ["vae/config.json", "vae/diffusion_pytorch_model.safetensors"]
    assert select_files(["vae/config.json", "vae/diffusion_pytorch_model.bin"]) == \
        ["vae/config.json", "vae/diffusion_pytorch_model.bin"]
    assert select_files(["README.md", "model.onnx"]) == []


def test_offline_unknown_id_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(ProbeError) as e:
        probe.load("no-such-owner/no-such-model-xyz", cache_dir=str(tmp_path))
    assert time.perf_counter() - t0 < 10
    msg = str(e.value)
    assert "\n" not in msg and "no-such-owner/no-such-model-xyz" in msg and "--local-dir" in msg


def test_unreachable_hub_fails_fast(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    t0 = time.perf_counter()
    with pytest.raises(ProbeError, match="cannot reach the Hub") as e:
        download("someone/some-vae", cache_dir=str(tmp_path))
    assert time.perf_counter() - t0 < 10 and "\n" not in str(e.value)


def test_offline_cached_repo_loads(monkeypatch, tmp_path):
    """A repo already in the Hub cache loads with HF_HUB_OFFLINE=1 (the cache layout of huggingface_hub)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--me--tiny-taesd"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    ref = TAESDMap("taesd", width=8)
    for half in ("encoder", "decoder"):
        torch.save(getattr(ref, half).state_dict(), snapshot / f"taesd_{half}.pth")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    m = probe.load("me/tiny-taesd", cache_dir=str(tmp_path))
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(m.encode(x), ref.encoder(x))
