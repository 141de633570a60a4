"""How f is computed (dtype, channels_last, compile) and batch sizes from memory, halving on OOM."""
from __future__ import annotations

import pytest
import torch

import probe
from probe.errors import ProbeError
from probe.field import iterate
from probe.field.compute import compute_map
from probe.field.memory import apply_chunked, choose_batch_size, free_memory, sample_cost, shrink_on_oom
from probe.maps.convae import ConvAE


def upsampling_map():
    """D: 8x nearest upsampling + a 3x3 conv to 8 channels; E: a stride-8 conv back to 4 latent channels."""
    dec = torch.nn.Sequential(torch.nn.Upsample(scale_factor=8), torch.nn.Conv2d(4, 8, 3, padding=1))
    enc = torch.nn.Conv2d(8, 4, 8, stride=8)
    return probe.wrap(enc, dec, lambda r: (4, r // 8, r // 8), modules=[enc, dec], check_inputs=False).eval()


def oom_map(limit: int, calls: list[int]):
    """A map that, like a full GPU, fails for batches above ``limit``."""
    def f(z):
        calls.append(len(z))
        if len(z) > limit:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return z / 2
    return probe.wrap(f, lambda z: z, (3,), check_inputs=False, name="oom")


def test_free_memory_and_batch_size_are_positive_and_bounded():
    assert free_memory("cpu") > 2 ** 20
    m = ConvAE(width=8, bottleneck=4).eval()
    b = choose_batch_size(m.f, (4,), 37, "cpu", torch.float32)
    assert 1 <= b <= 37
    assert choose_batch_size(m.f, (4,), 10 ** 6, "cpu", torch.float32, max_batch=64) == 64


def test_per_seed_cost_grows_with_resolution():
    m = upsampling_map()
    small, _ = sample_cost(m.f, m.latent_shape(16), "cpu", torch.float32)
    large, _ = sample_cost(m.f, m.latent_shape(32), "cpu", torch.float32)
    assert small > 16 * 16 * 8 * 4 and 2.5 < large / small < 6


def test_shrink_and_chunked_apply_survive_oom():
    out, b = shrink_on_oom(lambda k: [1] * k if k <= 3 else (_ for _ in ()).throw(
        torch.OutOfMemoryError("out of memory")), 20)
    assert b == 2 and out == [1, 1]
    z = torch.randn(10, 3)
    y, chunk = apply_chunked(oom_map(3, []).f, z, 8)
    assert chunk <= 3 and torch.equal(y, z / 2)
    with pytest.raises(ProbeError, match="even for one seed"):
        apply_chunked(oom_map(0, []).f, z, 8)
    with pytest.raises(ValueError):  # anything but OOM is not swallowed
        shrink_on_oom(lambda k: (_ for _ in ()).throw(ValueError("bug")), 4)


def test_out_of_memory_mid_run_halves_the_batch_and_continues():
    calls: list[int] = []
    z0 = torch.randn(16, 3, generator=torch.Generator().manual_seed(0))
    tr = iterate(oom_map(5, calls), z0, tol=1e-10, max_steps=100, batch_size=16)
    ref = iterate(oom_map(100, []), z0, tol=1e-10, max_steps=100, batch_size=16)
    assert tr.converged.all() and max(c for c in calls[-10:]) <= 5
    assert torch.allclose(tr.z, ref.z, rtol=1e-5, atol=1e-6) and (tr.steps - ref.steps).abs().max() <= 1


def test_bf16_compute_keeps_fp32_state_and_leaves_the_original():
    m = ConvAE(width=8, bottleneck=6).eval()
    low = compute_map(m, "bf16")
    assert next(m.parameters()).dtype == torch.float32 and next(low.parameters()).dtype == torch.bfloat16
    assert low.dtype == torch.float32 and low.describe()["compute"]["dtype"] == "bf16"
    z = torch.randn(5, 6)
    with torch.no_grad():
        ref, out = m.f(z), low.f(z)
    assert out.dtype == torch.float32 and float((out - ref).norm() / ref.norm()) < 3e-2
    tr = iterate(m, z, tol=1e-3, max_steps=50, batch_size=5, dtype="bf16")  # plain steps computed in bf16
    assert tr.z.dtype == torch.float32 and tr.n_evals > 0 and tr.config["dtype"] == "bf16"


def test_channels_last_gives_the_same_map():
    m = upsampling_map()
    fast = compute_map(m, channels_last=True)
    z = torch.randn(3, *m.latent_shape(32))
    with torch.no_grad():
        assert torch.allclose(fast.f(z), m.f(z), atol=1e-5, rtol=1e-4)
    assert fast.latent_shape(32) == m.latent_shape(32) and fast.downsample == m.downsample
    assert compute_map(m) is m  # nothing asked: no wrapper
    with pytest.raises(ProbeError, match="dtype"):
        compute_map(m, "int3")


def test_a_short_last_chunk_does_not_shrink_the_chunk():
    from probe.field.memory import apply_chunked

    z = torch.randn(10, 3)
    out, chunk = apply_chunked(lambda x: x * 2, z, 4)  # pieces of 4, 4 and 2
    assert chunk == 4 and torch.equal(out, z * 2)
