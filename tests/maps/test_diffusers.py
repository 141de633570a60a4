"""diffusers autoencoders built from tiny configs with random weights, saved and loaded back."""
from __future__ import annotations

import json

import pytest
import torch

import probe
from probe import ProbeError
from probe.maps.diffusers_ae import DiffusersMap

diffusers = pytest.importorskip("diffusers")


def tiny_kl(**kw):
    return diffusers.AutoencoderKL(block_out_channels=[8, 16], down_block_types=["DownEncoderBlock2D"] * 2,
                                   up_block_types=["UpDecoderBlock2D"] * 2, norm_num_groups=8, layers_per_block=1,
                                   latent_channels=4, **kw)


def tiny_tiny(**kw):  # TAESD layout (1,3,3,3 / 3,3,3,1 blocks), 8 channels wide
    return diffusers.AutoencoderTiny(encoder_block_out_channels=[8] * 4, decoder_block_out_channels=[8] * 4,
                                     latent_channels=4, **kw)


@pytest.fixture(scope="module")
def kl_dir(tmp_path_factory):
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("kl")
    tiny_kl(scaling_factor=0.5, shift_factor=0.1).save_pretrained(d)
    return d


def test_autoencoder_kl_scaling_convention(kl_dir):
    m = probe.load(kl_dir)
    ae = diffusers.AutoencoderKL.from_pretrained(kl_dir).eval()
    assert isinstance(m, DiffusersMap) and m.downsample == 2 and m.latent_shape(32) == (4, 16, 16)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        z = m.encode(x)
        # diffusion latents: (posterior mean - shift_factor) * scaling_factor of the [-1, 1] image
        torch.testing.assert_close(z, (ae.encode(2 * x - 1).latent_dist.mean - 0.1) * 0.5)
        torch.testing.assert_close(m.decode(z), (ae.decode(z / 0.5 + 0.1).sample + 1) / 2)
        assert z.shape == (2, *m.latent_shape(32))
        torch.testing.assert_close(m.encode(x), z)  # the posterior mean is deterministic
    d = m.describe()
    assert d["diffusers_class"] == "AutoencoderKL" and d["scaling"] == 0.5 and d["sample"] is False


def test_posterior_sample(kl_dir):
    mean_map, sample_map = probe.load(kl_dir), probe.load(kl_dir, sample=True)
    assert isinstance(mean_map, DiffusersMap)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        mean = mean_map.encode(x)
        a, b = sample_map.encode(x), sample_map.encode(x)
    assert not torch.allclose(a, b) and not torch.allclose(a, mean)
    # samples scatter around the mean with the posterior's std (scaled by 0.5)
    with torch.no_grad():
        std = mean_map.model.encode(2 * x - 1).latent_dist.std * 0.5
    assert float(((a - mean) / std).std()) == pytest.approx(1.0, abs=0.2)


def test_latents_mean_std_convention(tmp_path):
    mean, std = [0.1, -0.2, 0.3, 0.0], [2.0, 1.0, 0.5, 1.0]
    tiny_kl(scaling_factor=0.5, latents_mean=mean, latents_std=std).save_pretrained(tmp_path)
    m = probe.load(tmp_path)
    assert isinstance(m, DiffusersMap)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        raw = m.model.encode(2 * x - 1).latent_dist.mean
        want = (raw - torch.tensor(mean).view(1, 4, 1, 1)) * 0.5 / torch.tensor(std).view(1, 4, 1, 1)
        torch.testing.assert_close(m.encode(x), want)
        # and back: decoding the diffusion latents is decoding the raw posterior mean
        torch.testing.assert_close(m.decode(want), (m.model.decode(raw).sample + 1) / 2)


def test_autoencoder_tiny_is_taesd(tmp_path):
    """AutoencoderTiny through our map equals our own TAESD modules with the same weights."""
    from probe.maps.taesd import TAESDMap

    ae = tiny_tiny()
    ae.save_pretrained(tmp_path)
    m = probe.load(tmp_path)
    assert m.latent_shape(32) == (4, 4, 4) and m.downsample == 8
    ours = TAESDMap("taesd", width=8).eval()
    ours.encoder.load_state_dict({k[len("encoder.layers."):]: v for k, v in ae.state_dict().items()
                                  if k.startswith("encoder.")})
    ours.decoder.load_state_dict({f"{int(k.split('.')[2]) + 1}.{k.split('.', 3)[3]}": v  # index 0 is the clamp
                                  for k, v in ae.state_dict().items() if k.startswith("decoder.")})
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        z = m.encode(x)
        torch.testing.assert_close(z, ours.encode(x))  # [0, 1] images, latents unscaled (scaling_factor 1)
        torch.testing.assert_close(m.decode(z), ours.decode(z))
        torch.testing.assert_close(m.f(z), ours.f(z))


def test_pipeline_folder_with_vae(tmp_path, kl_dir):
    tiny_kl(scaling_factor=0.25).save_pretrained(tmp_path / "vae")
    (tmp_path / "model_index.json").write_text(json.dumps(
        {"_class_name": "StableDiffusionPipeline", "vae": ["diffusers", "AutoencoderKL"], "unet": [None, None]}))
    m = probe.load(tmp_path)
    assert isinstance(m, DiffusersMap)
    assert m.describe()["scaling"] == 0.25 and m.source.endswith("vae")
    assert probe.load(tmp_path, subfolder="vae").describe()["scaling"] == 0.25
    with pytest.raises(ProbeError, match="no config.json"):
        probe.load(tmp_path, subfolder="unet")


def test_unknown_class_and_bad_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel"}))
    with pytest.raises(ProbeError, match="not a diffusers autoencoder"):
        probe.load(tmp_path)
    (tmp_path / "config.json").write_text("{ not json")
    with pytest.raises(ProbeError, match="cannot read"):
        probe.load(tmp_path)


def test_dtype_and_image_checks(kl_dir):
    m = probe.load(kl_dir, dtype="fp64")
    assert m.dtype == torch.float64 and m.scale.dtype == torch.float64
    assert m.encode(torch.rand(1, 3, 16, 16)).dtype == torch.float64
    with pytest.raises(ProbeError, match="multiples of 2"):
        m.encode(torch.rand(1, 3, 15, 15))
    with pytest.raises(ProbeError, match=r"in \[0, 1\]"):
        m.encode(torch.rand(1, 3, 16, 16) * 2 - 1)  # a [-1, 1] image at the [0, 1] boundary
