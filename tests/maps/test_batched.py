"""Contract 4: encode_batched / decode_batched and the fingerprint every result records."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import probe
from probe import ProbeError
from probe.maps.base import FOUNDATION_DEFAULTS, SMALL_AE_DEFAULTS, family_settings


def tiny_map(seed: int = 0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        enc = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
        dec = nn.Sequential(nn.Linear(3, 64), nn.Sigmoid(), nn.Unflatten(1, (1, 8, 8)))
    return probe.wrap(enc, dec, (3,), image_channels=1, image_size=8, modules=[enc, dec], name="tiny")


def test_batched_matches_one_batch_and_returns_cpu_without_grad():
    m = tiny_map()
    x = torch.rand(10, 1, 8, 8)
    z = m.encode_batched(x, batch_size=3)
    assert z.shape == (10, 3) and z.device.type == "cpu" and not z.requires_grad
    torch.testing.assert_close(z, m.encode(x).detach(), rtol=1e-5, atol=1e-6)  # chunking: float rounding only
    y = m.decode_batched(z, batch_size=4)
    assert y.shape == (10, 1, 8, 8) and not y.requires_grad
    torch.testing.assert_close(y, m.decode(z).detach(), rtol=1e-5, atol=1e-6)
    u8 = (x * 255).round().to(torch.uint8)
    torch.testing.assert_close(m.encode_batched(u8), m.encode_batched(u8.float() / 255))
    with pytest.raises(ProbeError, match="batch_size"):
        m.encode_batched(x, batch_size=0)
    with pytest.raises(ProbeError, match="latents"):
        m.decode_batched(torch.zeros(0, 3))


def test_fingerprint_names_class_config_weights_and_shape():
    a, b, c = tiny_map(0), tiny_map(0), tiny_map(1)
    fa = a.fingerprint()
    assert fa["class"] == "CallableMap" and fa["name"] == "tiny" and fa["latent_shape"] == [3]
    assert fa["config"]["image_channels"] == 1 and fa["config"]["field_defaults"] == a.field_defaults
    assert len(fa["weights_sha256"]) == 64
    assert fa == b.fingerprint()  # same weights, same fingerprint
    assert fa["weights_sha256"] != c.fingerprint()["weights_sha256"]
    import json

    json.dumps(fa)  # a result stores it as JSON
    with torch.no_grad():  # an in-place change (a training step) changes the checksum
        next(a.parameters()).add_(1.0)
    assert a.fingerprint()["weights_sha256"] != fa["weights_sha256"]


def test_family_settings():
    assert family_settings("small") == SMALL_AE_DEFAULTS == {"tol": 1e-6, "max_steps": 3000}
    assert family_settings("foundation") == FOUNDATION_DEFAULTS == {"tol": 1e-5, "max_steps": 500}
    assert family_settings("small", {"max_steps": 10}) == {"tol": 1e-6, "max_steps": 10}
    with pytest.raises(ProbeError, match="unknown model family"):
        family_settings("huge")
    with pytest.raises(ProbeError, match="field_defaults"):
        family_settings(None, {"steps": 3})
