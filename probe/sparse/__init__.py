"""Batched sparse coding on a dictionary: OMP (the paper's coder) and lasso at equal sparsity.

Dictionaries are ``[n_features, n_atoms]`` (atoms in columns), signals
``[n_samples, n_features]``, codes ``[n_samples, n_atoms]``; torch on CPU or CUDA,
fp32 or fp64. See ``omp.py`` and ``lasso.py`` for how each matches scikit-learn.
"""
from __future__ import annotations

from .bases import pca_basis, random_orthogonal_basis
from .coder import CODERS, SparseConfig, code
from .lasso import lasso
from .omp import omp

__all__ = ["omp", "lasso", "code", "SparseConfig", "CODERS", "random_orthogonal_basis", "pca_basis"]
