"""`probe info`: facts and round-trip PSNR for a saved model; one-line errors for bad specs."""
from __future__ import annotations

import json
import time

import pytest
import torch

from probe.cli.main import main


@pytest.fixture(scope="module")
def kl_dir(tmp_path_factory):
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("kl")
    diffusers.AutoencoderKL(block_out_channels=[8, 16], down_block_types=["DownEncoderBlock2D"] * 2,
                            up_block_types=["UpDecoderBlock2D"] * 2, norm_num_groups=8, layers_per_block=1,
                            latent_channels=4, scaling_factor=0.5).save_pretrained(d)
    return d


def test_info_on_saved_autoencoder_kl(kl_dir, capsys):
    assert main(["info", str(kl_dir), "--resolution", "64"]) == 0
    out = capsys.readouterr().out
    assert "AutoencoderKL" in out and "4 x 32 x 32 at 64 px" in out and "PSNR" in out


def test_info_json(kl_dir, capsys):
    from probe.images import psnr, sample_photo
    from probe.maps.registry import load

    assert main(["info", str(kl_dir), "--resolution", "32", "--json", "--sample"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["class"] == "AutoencoderKL" and facts["latent_shape"] == [4, 16, 16]
    assert facts["sample"] is True and facts["dtype"] == "float32" and facts["device"] == "cpu"
    assert facts["parameters"] == load(kl_dir).n_parameters()
    # the reported PSNR is the posterior-mean round trip's, give or take the sampling noise
    m = load(kl_dir)
    x = sample_photo(32)
    with torch.no_grad():
        mean_psnr = float(psnr(m.decode(m.encode(x)).clamp(0, 1), x)[0])
    assert abs(facts["psnr_db"] - mean_psnr) < 3


def test_info_unknown_hub_id_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    assert main(["info", "no/such-model"]) != 0
    assert time.perf_counter() - t0 < 10
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1 and "no/such-model" in captured.err


def test_info_bad_options_are_one_line(kl_dir, capsys):
    assert main(["info", str(kl_dir), "--dtype", "fp7"]) == 2
    assert main(["info", str(kl_dir), "--resolution", "33"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "unknown dtype" in err[0] and "multiples of 2" in err[1]


def test_info_real_taef2(taef2_dir, capsys):
    assert main(["info", str(taef2_dir), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["latent_shape"] == [32, 32, 32] and facts["psnr_db"] > 20
