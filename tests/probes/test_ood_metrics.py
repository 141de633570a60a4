"""AUPR-In, AUPR-Out and both FPR@95 conventions against scikit-learn on random and tied scores."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_curve

from probe.errors import ProbeError
from probe.probes.metrics import aupr_in, aupr_out, auroc, average_precision, fpr95, fpr95_openood


def _cases():
    rng = np.random.default_rng(0)
    yield rng.normal(0, 1, 50), rng.normal(1, 1, 70)            # overlapping
    yield rng.integers(0, 4, 40) * 1.0, rng.integers(2, 6, 30) * 1.0  # many ties
    yield rng.normal(0, 1, 20), rng.normal(5, 1, 25)            # separated
    yield rng.normal(3, 1, 30), rng.normal(0, 1, 30)            # inverted


@pytest.mark.parametrize("case", list(range(4)))
def test_aupr_matches_sklearn(case):
    s_in, s_out = list(_cases())[case]
    y_in = np.r_[np.ones(s_in.size), np.zeros(s_out.size)]
    s = np.r_[s_in, s_out]
    assert aupr_in(s_in, s_out) == pytest.approx(average_precision_score(y_in, -s), abs=1e-9)
    assert aupr_out(s_in, s_out) == pytest.approx(average_precision_score(1 - y_in, s), abs=1e-9)
    assert average_precision(1 - y_in, s) == pytest.approx(average_precision_score(1 - y_in, s), abs=1e-9)


def _fpr_at_95_from_roc(y_pos, score_pos_high):
    """FPR at the first ROC point with TPR >= 0.95 (scikit-learn's curve, positives = y_pos)."""
    fpr, tpr, _ = roc_curve(y_pos, score_pos_high)
    return float(fpr[np.searchsorted(tpr, 0.95 - 1e-12)])


@pytest.mark.parametrize("case", list(range(4)))
def test_both_fpr95_conventions_match_sklearn_roc(case):
    s_in, s_out = list(_cases())[case]
    s = np.r_[s_in, s_out]
    y_in = np.r_[np.ones(s_in.size), np.zeros(s_out.size)]
    # classic: in-distribution positive (accepted when the score is low), fraction of OOD accepted
    assert fpr95(s_in, s_out) == pytest.approx(_fpr_at_95_from_roc(y_in, -s), abs=1e-9)
    # OpenOOD v1.5: OOD positive (flagged when the score is high), fraction of ID flagged
    assert fpr95_openood(s_in, s_out) == pytest.approx(_fpr_at_95_from_roc(1 - y_in, s), abs=1e-9)


def test_conventions_differ_and_edge_cases():
    s_in = np.r_[np.zeros(95), np.full(5, 10.0)]  # 5% of ID far out
    s_out = np.r_[np.full(90, 5.0), np.full(10, -1.0)]  # 10% of OOD hide inside
    assert fpr95(s_in, s_out) == pytest.approx(0.10)  # 95% ID recall: only the hidden OOD pass
    assert fpr95_openood(s_in, s_out) == pytest.approx(1.0)  # catching 95% OOD flags every ID image
    assert aupr_in([0.0], [1.0]) == 1.0 and aupr_out([0.0], [1.0]) == 1.0 and auroc([0.0], [1.0]) == 1.0
    with pytest.raises(ProbeError):
        average_precision([0, 0], [0.1, 0.2])
