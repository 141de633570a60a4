"""TAESD-format loading: checkpoints this test writes itself, and the real TAEF2 weights."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

import probe
from probe import ProbeError
from probe.maps.taesd import TAESDMap, find_taesd_pair, find_taesd_pairs, load_taesd


def write_pair(folder, name, latent_channels=4, pooled=False, width=8, fmt="pth", seed=0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        m = TAESDMap(None, latent_channels, pooled, width)
    folder.mkdir(parents=True, exist_ok=True)
    for half in ("encoder", "decoder"):
        sd = {k: v.half() for k, v in getattr(m, half).state_dict().items()}  # fp16, like the released files
        path = folder / f"{name}_{half}.{fmt}"
        torch.save(sd, path) if fmt == "pth" else save_file(sd, str(path))
    return m


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_roundtrip_matches_written_weights(tmp_path, fmt):
    ref = write_pair(tmp_path, "taesd", fmt=fmt).half().float()  # the same fp16-rounded weights
    m = probe.load(tmp_path)
    assert isinstance(m, TAESDMap) and m.variant == "taesd"
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        z = m.encode(x)
        assert z.shape == (2, *m.latent_shape(32)) == (2, 4, 4, 4)
        torch.testing.assert_close(z, ref.encoder(x))
        torch.testing.assert_close(m.decode(z), ref.decoder(z))
        torch.testing.assert_close(m.f(z), ref.encoder(ref.decoder(z)))


def test_variant_from_prefix_and_from_shapes(tmp_path):
    write_pair(tmp_path / "a", "taef1", latent_channels=16)
    assert probe.load(tmp_path / "a").variant == "taef1"
    write_pair(tmp_path / "b", "mine", latent_channels=32, pooled=True)  # unknown name: layout from the shapes
    m = probe.load(tmp_path / "b")
    assert m.variant is None and m.latent_channels == 32 and m.pooled
    assert m.latent_shape(64) == (32, 8, 8)
    with pytest.raises(ProbeError, match="not the layout of taesd"):
        load_taesd(tmp_path / "b", variant="taesd")


def test_decoder_clamps_its_input_softly(tmp_path):
    write_pair(tmp_path, "taesd")
    m = probe.load(tmp_path)
    z = torch.full((1, 4, 2, 2), 50.0)
    with torch.no_grad():  # 3*tanh(z/3) saturates: 50 and 100 decode (almost) alike
        torch.testing.assert_close(m.decode(z), m.decode(2 * z), atol=1e-4, rtol=0)


def test_mismatched_pairs_are_one_line_errors(tmp_path):
    write_pair(tmp_path / "a", "taesd")
    write_pair(tmp_path / "b", "taef1", latent_channels=16)
    with pytest.raises(ProbeError, match="mismatched TAESD pair") as e:
        load_taesd((tmp_path / "a" / "taesd_encoder.pth", tmp_path / "b" / "taef1_decoder.pth"))
    assert "\n" not in str(e.value)
    # same name, different models: caught by the shapes
    (tmp_path / "b" / "taef1_decoder.pth").rename(tmp_path / "b" / "x_decoder.pth")
    (tmp_path / "a" / "taesd_encoder.pth").rename(tmp_path / "b" / "x_encoder.pth")
    with pytest.raises(ProbeError, match="4 latent channels.*takes 16"):
        probe.load(tmp_path / "b")


def test_folder_discovery(tmp_path):
    assert find_taesd_pair(tmp_path) is None
    write_pair(tmp_path, "taesd")
    write_pair(tmp_path, "taesdxl")
    (tmp_path / "lonely_encoder.pth").write_bytes(b"")  # no decoder: not a pair
    assert [p[0].name for p in find_taesd_pairs(tmp_path)] == ["taesd_encoder.pth", "taesdxl_encoder.pth"]
    with pytest.raises(ProbeError, match="several TAESD pairs"):
        probe.load(tmp_path)
    assert probe.load(tmp_path, variant="taesdxl").variant == "taesdxl"


def test_bad_files(tmp_path):
    (tmp_path / "junk_encoder.pth").write_bytes(b"not a checkpoint")
    (tmp_path / "junk_decoder.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ProbeError, match="cannot read TAESD checkpoint"):
        probe.load(tmp_path)
    with pytest.raises(ProbeError, match="deterministic"):
        load_taesd(tmp_path, sample=True)
    with pytest.raises(ProbeError, match="no option.*subfolder"):
        load_taesd(tmp_path, subfolder="vae")


def test_taesd_named_pair_with_other_keys(tmp_path):
    for half in ("encoder", "decoder"):
        torch.save({"conv_in.weight": torch.zeros(4, 3, 3, 3), "conv_in.bias": torch.zeros(4)},
                   tmp_path / f"mine_{half}.pth")
    with pytest.raises(ProbeError, match=r"named like a TAESD encoder but its keys \(conv_in.bias, conv_in.weight\)"
                                         r".*FILE.py:factory") as e:
        probe.load(tmp_path)
    assert "\n" not in str(e.value) and "max()" not in str(e.value)


def test_real_taef2(taef2_dir):
    from probe.images import psnr, sample_photo

    m = probe.load(taef2_dir)
    assert m.variant == "taef2" and m.latent_shape(256) == (32, 32, 32)
    # the state-dict layout is ours exactly: every key and shape, nothing left over
    for half in ("encoder", "decoder"):
        sd = torch.load(taef2_dir / f"taef2_{half}.pth", map_location="cpu", weights_only=True)
        assert {k: tuple(v.shape) for k, v in sd.items()} == \
            {k: tuple(v.shape) for k, v in getattr(m, half).state_dict().items()}
    x = sample_photo(256)
    with torch.no_grad():
        z = m.encode(x)
        y = m.decode(z)
    assert z.shape == (1, 32, 32, 32)
    assert -6 < float(z.min()) and float(z.max()) < 6  # "roughly in [-3, 3]"
    assert float(psnr(y.clamp(0, 1), x)[0]) > 20
