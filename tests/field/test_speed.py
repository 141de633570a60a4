"""Fast paths: bf16 / channels_last / compile wrappers, memory-based batch size, halving on OOM."""
from __future__ import annotations

import pytest
import torch

import probe
from probe.errors import ProbeError
from probe.field import speed
from probe.field.iterate import iterate
from probe.maps.convae import ConvAE
from probe.maps.diffusers_ae import DiffusersMap


def tiny_taesd() -> DiffusersMap:
    import diffusers

    ae = diffusers.AutoencoderTiny(encoder_block_out_channels=[8] * 4, decoder_block_out_channels=[8] * 4,
                                   num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1))
    return DiffusersMap(ae.eval(), source="tiny TAESD config").eval()


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


def test_free_memory_is_positive():
    assert speed.free_memory("cpu") > 2 ** 20


def test_batch_size_is_positive_and_bounded():
    m = ConvAE(width=8, bottleneck=4).eval()
    b = speed.choose_batch_size(m, n=37)
    assert 1 <= b <= 37
    assert speed.choose_batch_size(m, n=10 ** 6, max_batch=64) == 64
    # almost no memory left: the chooser still returns a usable size
    assert speed.choose_batch_size(m, n=100, fraction=1e-12) == 1


def test_per_seed_cost_grows_with_resolution():
    m = upsampling_map()
    small, _ = speed.sample_cost(m, m.latent_shape(16))
    large, _ = speed.sample_cost(m, m.latent_shape(32))
    assert small > 16 * 16 * 8 * 4  # at least one 8-channel fp32 activation at full resolution
    assert 2.5 < large / small < 6  # 4x the pixels


def test_chooser_halves_on_simulated_oom():
    calls: list[int] = []
    m = oom_map(5, calls)
    b = speed.choose_batch_size(m, n=64, verify=True)
    assert b == 4 and calls[-4:] == [32, 16, 8, 4]


def test_shrink_and_chunked_apply_survive_oom():
    calls: list[int] = []
    out, b = speed.shrink_on_oom(lambda k: [1] * k if k <= 3 else (_ for _ in ()).throw(
        torch.OutOfMemoryError("out of memory")), 20)
    assert b == 2 and len(out) == 2
    m = oom_map(3, calls)
    z = torch.randn(10, 3)
    y, chunk = speed.apply_chunked(m.f, z, 8)
    assert chunk <= 3 and torch.equal(y, z / 2)
    with pytest.raises(ProbeError, match="even for one seed"):
        speed.apply_chunked(oom_map(0, []).f, z, 8)
    with pytest.raises(ValueError):  # anything but OOM is not swallowed
        speed.shrink_on_oom(lambda k: (_ for _ in ()).throw(ValueError("bug")), 4)


def test_bf16_path_runs_on_cpu_and_keeps_fp32_state():
    m = ConvAE(width=8, bottleneck=6).eval()
    fast = speed.fast_map(m, "bf16")
    assert next(m.parameters()).dtype == torch.float32  # the original is untouched
    assert next(fast.inner.parameters()).dtype == torch.bfloat16
    assert fast.dtype == torch.float32 and fast.describe()["fast_path"]["compute_dtype"] == "bfloat16"
    z = torch.randn(5, 6)
    with torch.no_grad():
        ref, low = m.f(z), fast.f(z)
    assert low.dtype == torch.float32
    assert float((low - ref).detach().norm() / ref.detach().norm()) < 3e-2  # bf16 keeps ~3 significant digits
    x = torch.rand(2, 1, 28, 28)
    assert fast.encode(x).dtype == torch.float32 and fast.decode(z).shape == (5, 1, 28, 28)
    tr = iterate(fast, z, tol=1e-3, max_steps=50, batch_size=5)  # the engine runs on the wrapper
    assert tr.z.dtype == torch.float32 and tr.n_evals > 0


def test_channels_last_gives_the_same_map():
    m = upsampling_map()
    fast = speed.fast_map(m, channels_last=True)
    z = torch.randn(3, *m.latent_shape(32))
    with torch.no_grad():
        assert torch.allclose(fast.f(z), m.f(z), atol=1e-5, rtol=1e-4)
    assert next(fast.inner.parameters()).is_contiguous(memory_format=torch.channels_last)
    assert fast.latent_shape(32) == m.latent_shape(32) and fast.downsample == m.downsample
    assert speed.fast_map(m) is m  # nothing asked: no wrapper
    with pytest.raises(ProbeError, match="dtype"):
        speed.fast_map(m, "int3")


@pytest.mark.slow
def test_compiled_map_matches_eager():
    m = tiny_taesd()
    fast = speed.fast_map(m, channels_last=True, compile=True)
    z = torch.randn(2, *m.latent_shape(32))
    assert torch.allclose(fast.f(z), m.f(z), atol=1e-4, rtol=1e-3)
    assert torch.allclose(fast.f(z[:1]), m.f(z[:1]), atol=1e-4, rtol=1e-3)  # a second batch size


def test_bf16_then_fp32_polish_gives_the_fp32_attractors():
    torch.manual_seed(1)
    dec, enc = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.Tanh()), torch.nn.Linear(32, 6)
    with torch.no_grad():
        enc.weight.mul_(2.0)  # a slowish contraction: ~30 fp32 steps to tol 1e-8
    m = probe.wrap(enc, dec, (6,), modules=[enc, dec], check_inputs=False, name="mlp").eval()
    z0 = 3 * torch.randn(6, 6)
    ref = iterate(m, z0, tol=1e-8, max_steps=400, batch_size=6)
    assert float(ref.steps.float().mean()) > 20
    for polish in ("plain", "anderson"):
        low = speed.iterate_low_precision(m, z0, "bf16", tol=1e-8, max_steps=400, batch_size=6, polish=polish)
        assert low.status_counts() == ref.status_counts()
        assert 0 < low.low_evals < low.n_evals
        both = ref.converged & low.converged
        assert bool(both.any())
        cos = torch.nn.functional.cosine_similarity(low.z[both], ref.z[both])
        assert float(cos.min()) > 0.999
        assert float((low.z[both] - ref.z[both]).norm(dim=1).max()) < 1e-2
    with pytest.raises(ProbeError, match="polish"):
        speed.iterate_low_precision(m, z0, polish="newton", batch_size=6)
