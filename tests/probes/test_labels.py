"""CLIP zero-shot labels on a tiny random-init open_clip model (built by open_clip, no download)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

open_clip = pytest.importorskip("open_clip")

import probe  # noqa: E402
from probe.data import load_images  # noqa: E402
from probe.maps.clip import fit_surrogate  # noqa: E402
from probe.maps.surrogate import FitConfig  # noqa: E402
from probe.probes.labels import zero_shot, zero_shot_probs  # noqa: E402

TINY = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 64, "layers": 2, "head_width": 32},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
LABELS = ["digit zero", "digit one", "a cat", "a shoe"]
TEMPLATES = ["a photo of a {}.", "a drawing of a {}."]


@pytest.fixture(scope="module")
def encoder():
    return probe.load("open_clip:ViT-B-32/random", model_cfg=TINY)


@pytest.fixture(scope="module")
def photos():
    return load_images("photos", n=5, resolution=48).float()


def reference_probs(clip, images, labels, templates):
    """CLIP zero-shot written out from open_clip's encode_image / encode_text, label by label."""
    tok = open_clip.get_tokenizer("ViT-B-32", context_length=16)
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    x = F.interpolate(images, size=(32, 32), mode="bicubic", align_corners=False, antialias=True)
    with torch.no_grad():
        img = F.normalize(clip.encode_image((x - mean) / std), dim=-1)
        cls = []
        for label in labels:
            t = F.normalize(clip.encode_text(tok([tpl.format(label) for tpl in templates])), dim=-1).mean(0)
            cls.append(F.normalize(t, dim=0))
        logits = clip.logit_scale.exp() * img @ torch.stack(cls, 1)
    return logits.softmax(-1)


def test_one_distribution_per_image_equal_to_clip_zero_shot(encoder, photos):
    p = zero_shot_probs(photos, encoder, LABELS, templates=TEMPLATES)
    assert p.shape == (5, 4) and float(p.min()) >= 0
    assert torch.allclose(p.sum(1), torch.ones(5), atol=1e-5)
    assert torch.allclose(p, reference_probs(encoder.clip, photos, LABELS, TEMPLATES), atol=1e-5)


def test_top_label_per_image(encoder, photos):
    p = zero_shot_probs(photos, encoder, LABELS)
    top = zero_shot(photos, encoder, LABELS)
    assert len(top) == 5
    for (label, prob), row in zip(top, p, strict=True):
        assert label == LABELS[int(row.argmax())] and prob == pytest.approx(float(row.max()))


def test_decoded_attractors_labelled_by_the_surrogates_own_encoder(encoder, tmp_path):
    digits = load_images("digits", split="train", n=64)
    m = fit_surrogate(encoder, digits, FitConfig(resolution=16, width=4, epochs=1, batch_size=32, val_fraction=0))
    with torch.no_grad():
        decoded = m.decode(torch.randn(3, 32))  # stand-ins for D(z*): 16 px images
    p = zero_shot_probs(decoded, m, LABELS)
    assert torch.allclose(p, zero_shot_probs(decoded, encoder, LABELS))
    # A saved surrogate keeps the text tower, so its folder labels images after a reload.
    folder = m.save(tmp_path / "s")
    assert torch.allclose(zero_shot_probs(decoded, str(folder), LABELS), p, atol=1e-6)


def test_plain_open_clip_model_works(encoder, photos):
    p = zero_shot_probs(photos, encoder.clip, LABELS)
    assert torch.allclose(p, zero_shot_probs(photos, encoder, LABELS), atol=1e-6)


def test_bad_inputs_are_one_line(encoder, photos):
    for labels, templates, needle in ((["a"], ["no slot"], "no '{}'"), ([], TEMPLATES, "non-empty"),
                                      ("cat", TEMPLATES, "non-empty list"), (["a", "a"], TEMPLATES, "distinct")):
        with pytest.raises(probe.ProbeError, match=needle):
            zero_shot_probs(photos, encoder, labels, templates=templates)
    with pytest.raises(probe.ProbeError, match="images must be in"):
        zero_shot_probs(photos * 3, encoder, LABELS)
    no_text = probe.load("open_clip:ViT-B-32/random", model_cfg=TINY, keep_text=False)
    with pytest.raises(probe.ProbeError, match="text tower"):
        zero_shot_probs(photos, no_text, LABELS)
    with pytest.raises(probe.ProbeError, match="CLIP model"):
        zero_shot_probs(photos, torch.nn.Linear(2, 2), LABELS)
