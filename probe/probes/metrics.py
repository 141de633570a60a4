"""OOD metrics: FPR at 95% TPR, AUROC, AUPR-In and AUPR-Out.

Convention (as in the OOD literature, e.g. Liu et al. 2020, Sun et al. 2022): every
score is "higher = more out-of-distribution", and the *in-distribution* samples are the
positives. A sample is accepted as in-distribution when its score is <= a threshold;
TPR is the fraction of in-distribution samples accepted, FPR the fraction of OOD samples
accepted. FPR95 is the FPR at the smallest threshold whose TPR reaches 95% (lower is
better); AUROC is P(score_in < score_out) + 0.5 P(tie) (higher is better, 0.5 = chance,
below 0.5 = the score is inverted for that set).

AUPR-In is the average precision with in-distribution as the positive class (ranked by
-score), AUPR-Out the average precision with OOD as positive (ranked by score); both are
scikit-learn's ``average_precision_score`` (step-wise sum of precision x recall increments,
tied scores grouped), reported like OpenOOD v1.5 (x100 in the tables).

FPR95 has two conventions in use. The classic one (``fpr95``; Liu et al. 2020, Sun et al.
2022, the paper): the fraction of OOD samples *accepted* at 95% in-distribution recall.
OpenOOD v1.5 (``fpr95_openood``) swaps the roles: the fraction of in-distribution samples
*flagged* as OOD at the threshold that catches 95% of the OOD samples. The two differ on
the same scores; tables here report the classic one and say so.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import ProbeError

__all__ = ["auroc", "fpr_at_tpr", "fpr95", "fpr95_openood", "average_precision", "aupr_in", "aupr_out",
           "bootstrap_ci"]


def _as_array(scores, name: str) -> np.ndarray:
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().to("cpu", torch.float64).numpy()
    a = np.asarray(scores, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise ProbeError(f"{name} scores are empty")
    if not np.isfinite(a).all():
        raise ProbeError(f"{name} scores contain NaN or inf ({int((~np.isfinite(a)).sum())} of {a.size})")
    return a


def auroc(score_in, score_out) -> float:
    """Area under the ROC curve with in-distribution as positive (ties count one half).

    Computed from midranks (Mann-Whitney U): exact and O(n log n).
    """
    s_in, s_out = _as_array(score_in, "in-distribution"), _as_array(score_out, "out-of-distribution")
    from scipy.stats import rankdata  # scipy ships with scikit-learn

    ranks = rankdata(np.concatenate([s_in, s_out]), method="average")  # midranks: ties count one half
    # U counts pairs with score_out > score_in (OOD ranked above in-distribution)
    u_out = ranks[s_in.size:].sum() - s_out.size * (s_out.size + 1) / 2.0
    return float(u_out / (s_in.size * s_out.size))


def fpr_at_tpr(score_in, score_out, tpr: float = 0.95) -> float:
    """FPR (fraction of OOD accepted) at the smallest threshold accepting >= ``tpr`` of in-distribution."""
    if not 0.0 < tpr <= 1.0:
        raise ProbeError(f"tpr must be in (0, 1], got {tpr}")
    s_in, s_out = _as_array(score_in, "in-distribution"), _as_array(score_out, "out-of-distribution")
    s_sorted = np.sort(s_in)
    # the k-th smallest in-distribution score is the smallest threshold with k accepted
    k = int(np.ceil(tpr * s_in.size - 1e-9))
    threshold = s_sorted[max(k, 1) - 1]
    return float((s_out <= threshold).mean())


def fpr95(score_in, score_out) -> float:
    return fpr_at_tpr(score_in, score_out, 0.95)


def fpr95_openood(score_in, score_out) -> float:
    """OpenOOD v1.5's FPR@95: fraction of in-distribution flagged as OOD at 95% OOD recall.

    OOD is the positive class; a sample is flagged when its score is >= a threshold, and the
    threshold is the largest one flagging at least 95% of the OOD samples. Equal to the classic
    ``fpr95`` with the roles of the two sets swapped and the scores negated.
    """
    s_in, s_out = _as_array(score_in, "in-distribution"), _as_array(score_out, "out-of-distribution")
    return fpr_at_tpr(-s_out, -s_in, 0.95)


def average_precision(y_true, score) -> float:
    """Average precision of binary labels ``y_true`` (1 = positive) ranked by ``score`` (higher =
    more positive): sum over distinct thresholds of (R_n - R_{n-1}) P_n, as scikit-learn computes it."""
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    s = _as_array(score, "ranking")
    if y.size != s.size:
        raise ProbeError(f"{y.size} labels for {s.size} scores")
    if not (y > 0).any():
        raise ProbeError("average precision needs at least one positive")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]  # the last index of each run of tied scores
    tps = np.cumsum(y)[last]
    fps = (last + 1) - tps
    precision, recall = tps / (tps + fps), tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def aupr_in(score_in, score_out) -> float:
    """Area under the precision-recall curve with in-distribution as positive (ranked by -score)."""
    s_in, s_out = _as_array(score_in, "in-distribution"), _as_array(score_out, "out-of-distribution")
    return average_precision(np.r_[np.ones(s_in.size), np.zeros(s_out.size)], -np.r_[s_in, s_out])


def aupr_out(score_in, score_out) -> float:
    """Area under the precision-recall curve with OOD as positive (ranked by score)."""
    s_in, s_out = _as_array(score_in, "in-distribution"), _as_array(score_out, "out-of-distribution")
    return average_precision(np.r_[np.zeros(s_in.size), np.ones(s_out.size)], np.r_[s_in, s_out])


def bootstrap_ci(score_in, score_out, metric=auroc, n_boot: int = 200, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of ``metric``, resampling both sets with replacement.

    It says how much a table entry would move with another draw of the test images, so that
    two methods a few points apart are not read as different.
    """
    s_in, s_out = _as_array(score_in, "in-distribution"), _as_array(score_out, "out-of-distribution")
    rng = np.random.default_rng(seed)
    vals = [metric(rng.choice(s_in, s_in.size), rng.choice(s_out, s_out.size)) for _ in range(n_boot)]
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return float(lo), float(hi)
