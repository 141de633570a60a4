"""open_clip encoders and their surrogate decoders, on a tiny random-init open_clip model
built by open_clip's own factory (no download) and real images (scikit-learn digits, photos)."""
from __future__ import annotations

import json
import time
from typing import Any

import pytest
import torch
import torch.nn.functional as F

open_clip = pytest.importorskip("open_clip")

import probe  # noqa: E402
from probe.cli.main import main  # noqa: E402
from probe.data import load_images  # noqa: E402
from probe.maps.clip import ClipSurrogateMap, OpenClipEncoder, fit_surrogate  # noqa: E402
from probe.maps.surrogate import DecoderConfig, FitConfig, UpconvDecoder, psnr  # noqa: E402

# A ViT-B-32 config shrunk to 32 px / 2 layers / 32-d embedding: real open_clip code, tiny weights.
TINY = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 64, "layers": 2, "head_width": 32},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
SPEC = "open_clip:ViT-B-32/random"
FIT = FitConfig(images="digits", resolution=16, width=8, epochs=3, batch_size=16, lr=2e-3, val_fraction=0.2)


@pytest.fixture(scope="module")
def encoder() -> OpenClipEncoder:
    m = probe.load(SPEC, model_cfg=TINY)
    assert isinstance(m, OpenClipEncoder)
    return m


@pytest.fixture(scope="module")
def digits():
    return load_images("digits", split="train", n=160)


@pytest.fixture(scope="module")
def surrogate(encoder, digits) -> ClipSurrogateMap:
    return fit_surrogate(encoder, digits, FIT)


def test_encoder_preprocessing_matches_open_clip_transform(encoder):
    from PIL import Image

    tf = open_clip.image_transform(32, is_train=False, mean=encoder.mean.flatten().tolist(),
                                   std=encoder.std.flatten().tolist())
    for res, tol in ((32, 1e-5), (96, 2e-3)):  # native size: exact; resized: tensor vs PIL bicubic
        photos = load_images("photos", n=3, resolution=res)
        ref = torch.stack([tf(Image.fromarray(a.permute(1, 2, 0).numpy())) for a in photos.images])
        with torch.no_grad():
            z = encoder.encode(photos.float())
            z_ref = F.normalize(encoder.clip.encode_image(ref), dim=-1) * 32 ** 0.5
        assert encoder.latent_shape() == (32,) and z.shape == (3, 32)
        assert torch.allclose(z.norm(dim=1), torch.full((3,), 32 ** 0.5), atol=1e-4)  # on the sphere of radius sqrt(d)
        assert (1 - F.cosine_similarity(z, z_ref)).max() < tol


def test_raw_latent_is_the_unnormalized_embedding(encoder):
    raw = probe.load(SPEC, model_cfg=TINY, latent="raw")
    raw.load_state_dict(encoder.state_dict())
    x = load_images("photos", n=2, resolution=32).float()
    with torch.no_grad():
        assert torch.allclose(raw.encode(x), encoder.clip.encode_image(encoder.preprocess(x)), atol=1e-5)


def test_bare_encoder_cannot_decode(encoder):
    with pytest.raises(probe.ProbeError, match="probe fit-decoder open_clip:ViT-B-32/random"):
        encoder.f(torch.randn(2, 32))


def test_offline_pretrained_tag_fails_fast_with_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline for sure, and an empty cache below
    t0 = time.perf_counter()
    with pytest.raises(probe.ProbeError) as err:
        probe.load("open_clip:ViT-B-32/laion2b_s34b_b79k", cache_dir=str(tmp_path))
    assert time.perf_counter() - t0 < 5
    msg = str(err.value)
    assert "\n" not in msg and "ViT-B-32/laion2b_s34b_b79k" in msg and "open_clip:ViT-B-32/<path" in msg
    assert main(["fit-decoder", "open_clip:ViT-B-32/laion2b_s34b_b79k", "--images", "digits", "--out",
                 str(tmp_path / "out"), "--cache-dir", str(tmp_path)]) == 2
    err_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("probe ")]
    assert len(err_lines) == 1 and "cannot be reached" in err_lines[0]


def test_cached_tag_loads_offline_and_saves_by_reference(encoder, monkeypatch, tmp_path):
    """A tag whose weights are in the hub cache loads with no network; a surrogate of it stores
    only the reference, and reloads from the cache or from an explicit checkpoint file."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snap = tmp_path / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text("abc123")
    torch.save(encoder.clip.state_dict(), snap / "open_clip_pytorch_model.bin")  # tiny stand-in weights
    tagged = probe.load("open_clip:ViT-B-32/laion2b_s34b_b79k", model_cfg=TINY, cache_dir=str(tmp_path))
    assert isinstance(tagged, OpenClipEncoder)
    x = load_images("photos", n=2, resolution=32).float()
    assert tagged.pretrained == "laion2b_s34b_b79k" and not tagged.stored_weights
    assert torch.equal(tagged.encode(x), encoder.encode(x))
    folder = ClipSurrogateMap(tagged, UpconvDecoder(DecoderConfig(latent_dim=32, resolution=8, width=4))).save(tmp_path / "s")
    assert not (folder / "encoder.safetensors").exists()
    z = torch.randn(3, 32)
    options: list[dict[str, Any]] = [{"cache_dir": str(tmp_path)},
                                     {"encoder_weights": str(snap / "open_clip_pytorch_model.bin")}]
    for opts in options:
        again = probe.load(folder, **opts)
        assert isinstance(again, ClipSurrogateMap)
        assert again.encoder.pretrained == "laion2b_s34b_b79k"
        with torch.no_grad():
            assert torch.equal(again.f(z), ClipSurrogateMap(tagged, again.decoder).f(z))


@pytest.mark.parametrize("tag, needle", [("ViT-B-32", "name the weights"), ("ViT-B-32/nope", "unknown pretrained tag"),
                                         ("Nope-42/random", "unknown architecture"),
                                         ("ViT-B-32//no/such/file.bin", "no such checkpoint file")])
def test_bad_specs_are_one_line(tag, needle):
    with pytest.raises(probe.ProbeError, match=needle) as err:
        probe.load(f"open_clip:{tag}")
    assert "\n" not in str(err.value)


def test_local_checkpoint_file_loads_with_its_weights(encoder, tmp_path):
    path = tmp_path / "tiny_clip.bin"
    torch.save(encoder.clip.state_dict(), path)
    local = probe.load(f"open_clip:ViT-B-32/{path}", model_cfg=TINY)
    x = load_images("photos", n=2, resolution=48).float()
    assert local.pretrained == str(path) and local.stored_weights
    assert torch.equal(local.encode(x), encoder.encode(x))


def test_decoder_shapes_range_and_config_checks():
    cfg = DecoderConfig(latent_dim=12, resolution=32, width=4)
    assert cfg.widths == [32, 16, 8, 4]  # at 4, 8, 16, 32 px
    assert DecoderConfig(resolution=64, width=4).widths == [32, 32, 16, 8, 4]  # capped at 8x the full-resolution width
    with torch.no_grad():
        x = UpconvDecoder(cfg)(torch.randn(5, 12) * 10)
    assert x.shape == (5, 3, 32, 32) and 0 <= float(x.min()) and float(x.max()) <= 1
    for bad in (48, 4, 0):
        with pytest.raises(ValueError, match="resolution"):
            DecoderConfig(latent_dim=12, resolution=bad)
    assert float(psnr(torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.1))) == pytest.approx(20.0)


def test_fit_on_digits_lowers_the_loss(surrogate):
    h = surrogate.fit_info["history"]
    assert [row["epoch"] for row in h] == [1, 2, 3]
    assert h[-1]["train_mse"] < 0.8 * h[0]["train_mse"]
    assert h[-1]["val_mse"] < h[0]["val_mse"] and h[-1]["val_psnr"] > h[0]["val_psnr"]
    assert surrogate.fit_info["n_train"] == 128 and surrogate.fit_info["n_val"] == 32
    # The logged validation PSNR is what the saved decoder gives on the same held-out images.
    digits16 = load_images("digits", split="train", n=160, resolution=16, channels=3).float()
    with torch.no_grad():
        recon = surrogate.decode(surrogate.encode(digits16))
    assert recon.shape == digits16.shape and 0 <= float(recon.min()) and float(recon.max()) <= 1
    assert float(psnr(recon, digits16).mean()) > h[0]["val_psnr"]


def test_saved_surrogate_reloads_through_probe_load(surrogate, tmp_path):
    folder = surrogate.save(tmp_path / "surrogate")
    meta = json.loads((folder / "probe_map.json").read_text())
    assert meta["adapter"] == "clip_surrogate" and meta["encoder"]["weights"] == "encoder.safetensors"
    assert meta["fit"]["epochs"] == 3 and meta["images"]["name"] and meta["map"]["class"] == "ClipSurrogateMap"
    again = probe.load(folder)
    assert isinstance(again, ClipSurrogateMap) and again.describe() == surrogate.describe()
    z = torch.randn(6, 32)
    x = load_images("photos", n=2, resolution=40).float()
    with torch.no_grad():
        assert torch.equal(again.f(z), surrogate.f(z))
        assert torch.equal(again.encode(x), surrogate.encode(x))
        assert torch.equal(again.decode(z), surrogate.decode(z))
    assert again.field_defaults == {"tol": 1e-5, "max_steps": 500}


def test_consistency_loss_is_trained_and_recorded(encoder, digits):
    cfg = FitConfig(resolution=16, width=8, epochs=1, batch_size=32, lr=2e-3, consistency=1.0, val_fraction=0.25)
    m = fit_surrogate(encoder, digits.subset(64), cfg)
    row = m.fit_info["history"][0]
    assert row["train_consistency"] > 0 and row["val_residual"] > 0
    assert m.fit_info["fit"]["consistency"] == 1.0


def test_cli_fit_decoder_writes_a_loadable_folder(tmp_path, capsys):
    out = tmp_path / "cli"
    rc = main(["fit-decoder", SPEC, "--model-cfg", json.dumps(TINY), "--images", "digits", "--n-images", "48",
               "--resolution", "8", "--width", "4", "--epochs", "1", "--batch-size", "16", "--out", str(out)])
    assert rc == 0 and "val PSNR" in capsys.readouterr().out
    m = probe.load(out)
    assert m.decode(torch.randn(2, 32)).shape == (2, 3, 8, 8)
    assert json.loads((out / "probe_map.json").read_text())["images"]["n"] == 48
