"""The paper's conv autoencoder family and its training loop, on tiny models and real digits."""
from __future__ import annotations

import json
from typing import Any, cast

import pytest
import torch

import probe
from probe.errors import ProbeError
from probe.maps.convae import ConvAE, ConvAEConfig, load_saved
from probe.train import TrainConfig, TrainRun, augment, mse, train


@pytest.fixture(autouse=True)
def _one_thread():
    # On 2 cores shared by many processes, OpenMP threads spin-wait on each other and small convs
    # run 10-100x slower with 2 threads than with 1. Scoped to these tests, restored after.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def digits_uint8(n: int | None = None) -> torch.Tensor:
    """scikit-learn's real 8x8 handwritten digits as uint8 [N, 1, 8, 8]."""
    from sklearn.datasets import load_digits
    from sklearn.utils import Bunch

    x = torch.from_numpy(cast(Bunch, load_digits()).images).float() / 16
    x = (x * 255).round().to(torch.uint8)[:, None]
    return x if n is None else x[:n]


@pytest.mark.parametrize("size", [8, 13, 28, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_decoder_mirrors_encoder_for_any_size(size, channels):
    m = ConvAE(image_size=size, image_channels=channels, width=2, bottleneck=3)
    x = torch.rand(2, channels, size, size)
    z = m.encode(x)
    assert z.shape == (2, 3) and m.latent_shape() == (3,)
    assert m.decode(z).shape == x.shape
    assert m.f(z).shape == z.shape


def test_architecture_is_the_papers():
    m = ConvAE(image_size=28, width=4, bottleneck=5)
    convs = [l for l in m.encoder if isinstance(l, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 8, 16, 32]
    assert all(c.kernel_size == (3, 3) and c.stride == (2, 2) for c in convs)
    assert m.encoder[-1].out_features == 5
    assert m.field_defaults == {"tol": 1e-6, "max_steps": 3000}
    assert (m.image_channels, m.image_size) == (1, 28)
    out = m.decode(torch.randn(16, 5) * 10)
    assert out.min() >= 0 and out.max() <= 1  # sigmoid: decoded images stay images


def test_save_load_roundtrip_through_probe_load(tmp_path):
    m = ConvAE(image_size=16, image_channels=3, width=3, bottleneck=4).eval()
    m.save(tmp_path / "ae", note="hello")
    meta = json.loads((tmp_path / "ae" / "probe_map.json").read_text())
    assert meta["adapter"] == "convae" and meta["note"] == "hello"
    back = probe.load(str(tmp_path / "ae"))
    assert isinstance(back, ConvAE) and back.config == m.config
    z = torch.randn(5, 4)
    torch.testing.assert_close(back.f(z), m.f(z), rtol=0, atol=0)
    assert back.describe()["config"]["bottleneck"] == 4


def test_bad_inputs_are_one_line_errors(tmp_path):
    m = ConvAE(image_size=8, width=2, bottleneck=3)
    with pytest.raises(ProbeError, match="latents of shape"):
        m.decode(torch.randn(2, 4))
    with pytest.raises(ProbeError, match="8x8"):
        m.encode(torch.rand(2, 1, 16, 16))
    with pytest.raises(ValueError):
        ConvAEConfig(bottleneck=0)
    m.save(tmp_path / "ae")
    meta = json.loads((tmp_path / "ae" / "probe_map.json").read_text())
    meta["config"]["bottleneck"] = 7
    with pytest.raises(ProbeError, match="do not match"):
        load_saved(tmp_path / "ae", meta)
    with pytest.raises(ProbeError, match="no load options"):
        load_saved(tmp_path / "ae", None, sample=True)


def test_shift_is_a_translation_and_flip_a_mirror():
    x = torch.zeros(64, 1, 8, 8)
    x[:, :, 3:5, 3:5] = torch.rand(64, 1, 2, 2) + 0.1  # zero border: a shift loses nothing
    y = augment(x, "shift", torch.Generator().manual_seed(0))
    torch.testing.assert_close(y.sum((1, 2, 3)), x.sum((1, 2, 3)))
    moved = [not torch.equal(a, b) for a, b in zip(x, y, strict=True)]
    assert 0 < sum(moved) < 64  # 24 of 25 offsets move the image
    for a, b in zip(x, y, strict=True):  # each output is the input rolled by one offset in [-2, 2]^2
        assert any(torch.equal(torch.roll(a, (dy, dx), (1, 2)), b) for dy in range(-2, 3) for dx in range(-2, 3))
    f = augment(x, "flip", torch.Generator().manual_seed(0))
    assert all(torch.equal(b, a) or torch.equal(b, a.flip(-1)) for a, b in zip(x, f, strict=True))


def test_training_on_real_digits_beats_the_mean_image(tmp_path):
    x = torch.nn.functional.interpolate(digits_uint8().float(), size=16, mode="bilinear")  # 16 px: 2x2 at the bottleneck
    x = x.round().clamp(0, 255).to(torch.uint8)
    train_x, test_x = x[:1500], x[1500:]
    cfg = TrainConfig(width=8, bottleneck=8, epochs=4, batch_size=32, lr=2e-3, keep_checkpoints=False)
    run = train(cfg, tmp_path / "run", train_set=train_x, test_set=test_x, log=None)
    mean_img = train_x.float().mean(0) / 255
    baseline = float(((test_x.float() / 255 - mean_img) ** 2).mean())
    hist = run.history
    assert len(hist) == 4 and hist[-1]["train_mse"] < hist[0]["train_mse"]
    assert hist[-1]["test_mse"] < 0.6 * baseline, (hist[-1]["test_mse"], baseline)  # 0.43 when written
    assert abs(mse(run.model, test_x) - hist[-1]["test_mse"]) < 1e-6
    saved = json.loads((tmp_path / "run" / "train.json").read_text())
    assert saved["config"]["lr"] == 2e-3 and saved["map"]["config"]["bottleneck"] == 8
    assert [r["lr"] for r in saved["history"]] == [2e-3] * 4  # StepLR step 10: not yet
    assert not (tmp_path / "run" / "checkpoints" / "epoch_0001").exists()


def test_resume_equals_uninterrupted_run(tmp_path):
    x = digits_uint8(300)
    kw: dict[str, Any] = dict(width=2, bottleneck=3, batch_size=50, lr_step=1, lr_gamma=0.5, augment="shift")
    full = train(TrainConfig(epochs=3, **kw), tmp_path / "a", train_set=x, test_set=x[:50], log=None)
    train(TrainConfig(epochs=1, **kw), tmp_path / "b", train_set=x, test_set=x[:50], log=None)
    resumed = train(TrainConfig(epochs=3, **kw), tmp_path / "b", train_set=x, test_set=x[:50], log=None)
    assert [r["lr"] for r in resumed.history] == [r["lr"] for r in full.history] == [kw["lr"] if "lr" in kw else 5e-4,
                                                                                     2.5e-4, 1.25e-4]
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    back = TrainRun.load(tmp_path / "b")
    assert back.epochs_done == 3
    first = back.checkpoint(1)
    conv_first, conv_back = first.encoder[0], back.model.encoder[0]
    assert isinstance(conv_first, torch.nn.Conv2d) and isinstance(conv_back, torch.nn.Conv2d)
    assert not torch.equal(conv_first.weight, conv_back.weight)
    with pytest.raises(ProbeError, match="other settings"):
        train(TrainConfig(epochs=3, **{**kw, "bottleneck": 4}), tmp_path / "b", train_set=x, log=None)


def test_builtin_default_loads_and_is_contractive():
    from probe.field import find_attractors

    m = probe.load("builtin:fmnist-k16")
    assert isinstance(m, ConvAE) and m.latent_shape() == (16,)
    assert (m.image_channels, m.image_size) == (1, 28) and m.field_defaults == {"tol": 1e-6, "max_steps": 3000}
    weights = probe.maps.registry.BUILTIN_DIR / "fmnist-k16" / "model.safetensors"
    assert weights.stat().st_size < 4_000_000  # a few MB at most inside the package
    aset = find_attractors(m, n_seeds=8, seed=0)  # N(0, I) seeds: plain iteration converges (MODEL_CARD.md)
    assert aset.status_counts()["converged"] == 8 and bool(aset.stable.all())


def test_builtin_reconstruction_matches_its_model_card():
    from probe.data import load_images

    try:
        test = load_images("fashion-mnist", split="test", n=2000, seed=0)  # the run's own test subset
    except ProbeError as e:
        pytest.skip(f"Fashion-MNIST not installed: {e}")
    card = json.loads((probe.maps.registry.BUILTIN_DIR / "fmnist-k16" / "train.json").read_text())
    m = probe.load("builtin:fmnist-k16")
    assert isinstance(m, ConvAE)
    assert mse(m, test.images) == pytest.approx(card["history"][-1]["test_mse"], rel=1e-4)


def test_probe_train_cli_with_yaml_and_resume(tmp_path, capsys):
    from probe.cli.main import main

    (tmp_path / "c.yaml").write_text("train:\n  dataset: digits\n  image_size: 16\n  width: 2\n  bottleneck: 3\n"
                                     "  n_train: 200\n  n_test: 50\n")
    args = ["train", "--config", str(tmp_path / "c.yaml"), "--epochs", "1", "--out", str(tmp_path / "run")]
    assert main(args) == 0
    assert "model saved in" in capsys.readouterr().out
    run = TrainRun.load(tmp_path / "run")
    assert run.config.bottleneck == 3 and run.config.image_size == 16 and run.epochs_done == 1
    assert probe.load(str(tmp_path / "run")).image_size == 16
    assert main(args[:-4] + ["--epochs", "2", "--out", str(tmp_path / "run")]) == 0  # resumes to epoch 2
    assert TrainRun.load(tmp_path / "run").epochs_done == 2
    assert main(args[:-4] + ["--bottleneck", "4", "--out", str(tmp_path / "run")]) == 2  # other settings: one-line error
    assert "other settings" in capsys.readouterr().err
