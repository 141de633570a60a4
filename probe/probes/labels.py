"""CLIP zero-shot labels for images, e.g. decoded attractors D(z*).

For a CLIP surrogate the default labeller is the adapter's own encoder: the attractor is read
by the same model whose field produced it. Any open_clip model can label any images too.

The probabilities are CLIP's zero-shot classifier: softmax over labels of
``logit_scale * cos(image embedding, mean normalized text embedding over templates)``.
They are relative to the label list given: a label set that misses the true content still
sums to 1, so read them as "which of these", never as "how much".
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..errors import ProbeError

__all__ = ["zero_shot", "zero_shot_probs", "DEFAULT_TEMPLATES"]

#: CLIP's plain prompt; pass open_clip.zero_shot_metadata.OPENAI_IMAGENET_TEMPLATES for its ensemble.
DEFAULT_TEMPLATES: tuple[str, ...] = ("a photo of a {}.",)


def _labeller(model, tokenizer=None):
    """(OpenClipEncoder with its text tower, tokenizer) from a spec, a probe map or an open_clip model."""
    from ..maps.clip import ClipSurrogateMap, OpenClipEncoder, from_open_clip
    from ..maps.registry import load

    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        model = load(str(model))
    if isinstance(model, ClipSurrogateMap):
        model = model.encoder
    elif not isinstance(model, OpenClipEncoder):
        if not (hasattr(model, "visual") and hasattr(model, "encode_text")):
            raise ProbeError(f"zero-shot labels need a CLIP model (open_clip:<arch>/<pretrained>, a CLIP surrogate folder "
                             f"or an open_clip model), got {type(model).__name__}")
        model = from_open_clip(model, arch="custom")
        if tokenizer is None:
            from open_clip.tokenizer import SimpleTokenizer

            tokenizer = SimpleTokenizer(context_length=getattr(model.clip, "context_length", 77))
    if model.clip is None:
        raise ProbeError(f"{model.name} was loaded without its text tower; load it with keep_text=True for zero-shot labels")
    return model, tokenizer or model.tokenizer()


def _check_labels(labels: Sequence[str], templates: Sequence[str | Callable]) -> tuple[list[str], list]:
    if isinstance(labels, str) or not labels:
        raise ProbeError("labels must be a non-empty list of class names, e.g. ['dog', 'cat']")
    labels = [str(v) for v in labels]
    if len(set(labels)) != len(labels):
        raise ProbeError("labels must be distinct")
    if isinstance(templates, str):
        templates = [templates]
    templates = list(templates)
    if not templates:
        raise ProbeError("templates must be a non-empty list such as ['a photo of a {}.']")
    for t in templates:
        if isinstance(t, str) and "{}" not in t:
            raise ProbeError(f"template {t!r} has no '{{}}' for the label")
    return labels, templates


@torch.no_grad()
def zero_shot_probs(images, model, labels: Sequence[str], templates: Sequence[str | Callable] = DEFAULT_TEMPLATES,
                    batch_size: int = 64, tokenizer=None) -> Tensor:
    """Label distribution per image: float32 ``[N, len(labels)]``, each row summing to 1.

    ``images``: float ``[N, C, H, W]`` in [0, 1] (any size; decoded attractors) or an ImageSet.
    ``model``: an ``open_clip:`` spec, a CLIP surrogate folder, an :class:`OpenClipEncoder` /
    :class:`ClipSurrogateMap` (its own encoder is used), or an open_clip model.
    """
    from open_clip.zero_shot_classifier import build_zero_shot_classifier

    from ..data import ImageSet

    labels, templates = _check_labels(labels, templates)
    enc, tok = _labeller(model, tokenizer)
    if isinstance(images, ImageSet):
        images = images.float()
    images = enc.check_images(images)
    clip = enc.clip
    if clip is None:
        raise ProbeError(f"{enc.name} was loaded without its text tower; load it with keep_text=True")
    weights = build_zero_shot_classifier(clip, tok, labels, templates, num_classes_per_batch=10,
                                         device=enc.device)  # [d, L], unit columns
    scale = clip.logit_scale.exp().float() if hasattr(clip, "logit_scale") else torch.tensor(100.0)
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].to(enc.device, enc.dtype)
        feats = torch.nn.functional.normalize(enc.embed(x).float(), dim=-1)
        out.append(torch.softmax(scale * feats @ weights.float(), dim=-1).cpu())
    return torch.cat(out)


def zero_shot(images, model, labels: Sequence[str], templates: Sequence[str | Callable] = DEFAULT_TEMPLATES,
              batch_size: int = 64, tokenizer=None) -> list[tuple[str, float]]:
    """The most probable label per image and its probability: ``[(label, prob), ...]``.

    See :func:`zero_shot_probs` for the arguments and the full distributions.
    """
    probs = zero_shot_probs(images, model, labels, templates, batch_size, tokenizer)
    p, idx = probs.max(dim=1)
    names = list(labels)
    return [(names[int(i)], float(v)) for v, i in zip(p, idx, strict=True)]
