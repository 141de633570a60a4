"""Merge rules: the count depends on the rule, so both are checked on points with known groups."""
from __future__ import annotations

import math

import pytest
import torch

from probe.errors import ProbeError
from probe.field import merge_end_points


def _at(deg: float, r: float = 1.0) -> list[float]:
    return [r * math.cos(math.radians(deg)), r * math.sin(math.radians(deg))]


def test_cosine_merges_directions_and_ignores_scale():
    # cos > 0.99 <=> angle < 8.11 degrees
    x = torch.tensor([_at(0), _at(5, 3.0), _at(20), _at(24), _at(90)])
    labels, leaders = merge_end_points(x, "cosine", 0.99)
    assert labels.tolist() == [0, 0, 1, 1, 2] and leaders.tolist() == [0, 2, 4]


def test_euclidean_radius_gives_a_different_count_on_the_same_points():
    x = torch.tensor([_at(0), _at(5, 3.0), _at(20), _at(24), _at(90)])
    labels, _ = merge_end_points(x, "euclidean", 0.05)  # 20 vs 24 degrees: 2 sin 2 = 0.07 apart
    assert labels.tolist() == [0, 1, 2, 3, 4]  # 5 groups where cosine found 3
    labels, _ = merge_end_points(x, "euclidean", 0.2)
    assert labels.tolist() == [0, 1, 2, 2, 3]


def test_a_point_joins_the_most_similar_group_and_blocks_do_not_matter():
    x = torch.tensor([_at(0), _at(10), _at(6)])  # 6 deg is within 8.1 of both; closer to 10
    labels, _ = merge_end_points(x, "cosine", 0.99)
    assert labels.tolist() == [0, 1, 1]
    gen = torch.Generator().manual_seed(0)
    centers = torch.randn(7, 16, generator=gen)
    pts = centers[torch.randint(0, 7, (300,), generator=gen)] + 1e-3 * torch.randn(300, 16, generator=gen)
    one, _ = merge_end_points(pts, "cosine", 0.99, block=1024)
    many, _ = merge_end_points(pts, "cosine", 0.99, block=7)
    assert torch.equal(one, many) and int(one.max()) + 1 == 7


def test_unknown_rule_is_one_clear_error():
    with pytest.raises(ProbeError, match="unknown merge rule 'l1'"):
        merge_end_points(torch.randn(3, 2), "l1", 0.5)
