"""A batch of active sets with the inverse Cholesky factor of their Gram blocks.

Both coders grow, per signal, a set I of atoms and need G_II^{-1} (the least-squares
solve on the active atoms) and products G[:, I] v. Keeping L^{-1}, the inverse of the
Cholesky factor of G_II, makes every per-step operation a batched matrix product
(no per-signal LAPACK call), which is what makes a batch of 500 signals fast on a
CPU and maps one to one onto a GPU. Adding an atom is the progressive Cholesky update
of Batch-OMP (Rubinstein, Zibulevsky, Elad 2008) written for the inverse factor:

    w = L^{-1} G[I, j],   l = sqrt(G[j, j] - |w|^2),
    new last row of L^{-1} = [-(w^T L^{-1}) / l, 1 / l].

Slots past a signal's active count hold identity rows in L^{-1} and zero data, so
signals with different active counts share one padded tensor.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

#: Columns of G per block on CPU: 128 columns x 4096 rows x 4 bytes = 2 MiB, about one core's L2.
CPU_BLOCK = 128


class ActiveSet:
    """Per-signal active atoms ``idx[b, :n[b]]`` and L^{-1} of ``G[idx, idx]``."""

    def __init__(self, gram: Tensor, n_rows: int, capacity: int):
        self.gram = gram
        self.eps = torch.finfo(gram.dtype).eps
        dev, dt = gram.device, gram.dtype
        capacity = max(1, capacity)
        self.idx = torch.zeros(n_rows, capacity, dtype=torch.long, device=dev)
        self.n = torch.zeros(n_rows, dtype=torch.long, device=dev)
        self.linv = torch.eye(capacity, dtype=dt, device=dev).repeat(n_rows, 1, 1)
        # L^{-1} is also kept transposed: a batched row-vector-times-matrix product runs
        # about twice as fast as matrix-times-vector on CPU, and both products are needed
        self.linv_t = self.linv.clone()
        #: Extra per-slot values (coefficients, signs) moved along with the slots.
        self.slots: dict[str, Tensor] = {}
        self._gram_blocks: list[Tensor] | None = None

    @property
    def capacity(self) -> int:
        return self.idx.shape[1]

    def width(self) -> int:
        """Slots in use by the fullest signal (work is done on this many, not the capacity)."""
        return int(self.n.max()) if self.n.numel() else 0

    def used(self, m: int) -> Tensor:
        return torch.arange(m, device=self.n.device) < self.n[:, None]

    def add_slot_data(self, name: str, dtype=None) -> Tensor:
        t = torch.zeros(self.idx.shape, dtype=dtype or self.gram.dtype, device=self.gram.device)
        self.slots[name] = t
        return t

    # -- growing and shrinking ---------------------------------------------
    def grow(self, capacity: int) -> None:
        old = self.capacity
        if capacity <= old:
            return
        rows = self.idx.shape[0]
        pad = capacity - old
        self.idx = torch.cat([self.idx, self.idx.new_zeros(rows, pad)], 1)
        for k, t in self.slots.items():
            self.slots[k] = torch.cat([t, t.new_zeros(rows, pad)], 1)
        linv = torch.eye(capacity, dtype=self.linv.dtype, device=self.linv.device).repeat(rows, 1, 1)
        linv[:, :old, :old] = self.linv
        self.linv, self.linv_t = linv, linv.transpose(1, 2).contiguous()

    def keep(self, rows: Tensor) -> None:
        """Keep only ``rows`` (finished signals leave the batch and stop costing compute)."""
        self.idx, self.n, self.linv, self.linv_t = self.idx[rows], self.n[rows], self.linv[rows], self.linv_t[rows]
        self.slots = {k: t[rows] for k, t in self.slots.items()}

    # -- products with the factor and with G ---------------------------------
    def linv_times(self, v: Tensor) -> Tensor:
        """``L^{-1} v`` for ``v [B, m]`` (first ``m`` slots)."""
        m = v.shape[1]
        return torch.bmm(v.unsqueeze(1), self.linv_t[:, :m, :m]).squeeze(1)

    def linv_t_times(self, v: Tensor) -> Tensor:
        """``L^{-T} v`` for ``v [B, m]`` (first ``m`` slots)."""
        m = v.shape[1]
        return torch.bmm(v.unsqueeze(1), self.linv[:, :m, :m]).squeeze(1)

    def solve(self, rhs: Tensor) -> Tensor:
        """``G_II^{-1} rhs = L^{-T} L^{-1} rhs`` for ``rhs [B, m]`` (zero in unused slots)."""
        return self.linv_t_times(self.linv_times(rhs))

    def gram_times(self, coef: Tensor, into: Tensor | None = None) -> Tensor:
        """``G[:, I] coef`` for ``coef [B, m]``, ``[B, n_atoms]``; with ``into``: ``into -= G[:, I] coef``.

        Only the k active rows of G are read per signal (a weighted sum of k rows),
        which sets the cost at O(n_atoms * k) per signal per step instead of
        O(n_atoms^2) for a dense code times G; dense wins again once k is a large
        fraction of the atoms.
        """
        rows, m = coef.shape
        n_atoms = self.gram.shape[0]
        coef = torch.where(self.used(m), coef, torch.zeros_like(coef))  # unused slots point at atom 0
        idx = self.idx[:, :m].contiguous()  # once here, not once per block inside embedding_bag
        if 3 * m >= n_atoms:
            dense = coef.new_zeros(rows, n_atoms)
            dense.scatter_add_(1, idx, coef)
            product = dense @ self.gram
        elif self.gram.device.type == "cpu" and self.gram.dtype == torch.float64:
            product = self._csr(idx, coef) @ self.gram  # MKL's sparse product beats embedding_bag in fp64
        else:
            # embedding_bag is exactly "weighted sum of rows of a table", vectorised for fp32; on
            # CPU the table is cut into column blocks that stay in cache while every signal reads
            # them, and each block's result goes straight to its columns of the output
            out = into if into is not None else coef.new_empty(rows, n_atoms)
            start = 0
            for block in self._blocks():
                part = F.embedding_bag(idx, block, per_sample_weights=coef, mode="sum")
                cols = slice(start, start + block.shape[1])
                if into is None:
                    out[:, cols] = part
                else:
                    out[:, cols] -= part
                start += block.shape[1]
            return out
        return product if into is None else into.sub_(product)

    def _blocks(self) -> list[Tensor]:
        if self._gram_blocks is None:
            width = CPU_BLOCK if self.gram.device.type == "cpu" else self.gram.shape[1]
            self._gram_blocks = [b.contiguous() for b in self.gram.split(width, 1)]
        return self._gram_blocks

    def _csr(self, idx: Tensor, coef: Tensor) -> Tensor:
        rows, m = coef.shape
        crow = torch.arange(0, rows * m + 1, m, device=coef.device)
        with warnings.catch_warnings():  # "sparse CSR support is in beta": said once per process, not ours to act on
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(crow, idx.reshape(-1), coef.reshape(-1), size=(rows, self.gram.shape[0]),
                                           dtype=coef.dtype, device=coef.device, check_invariants=False)

    # -- adding and removing atoms -----------------------------------------
    def add(self, atoms: Tensor, live: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Append ``atoms[b]`` to signal b's set where ``live[b]``.

        Returns ``(ok, w, l)``: ``ok`` is False where the atom is (numerically) in the
        span of the active ones (G[j, j] - |w|^2 <= eps G[j, j], scikit-learn's test for
        unit atoms); ``w`` and ``l`` are the update's vector and pivot.
        """
        m = self.width()
        if m + 1 > self.capacity:
            self.grow(max(m + 1, 2 * self.capacity))
        rows = atoms.shape[0]
        ar = torch.arange(rows, device=atoms.device)
        pos = self.n.clone()
        if m:
            used = self.used(m)
            g = self.gram[atoms[:, None], self.idx[:, :m]] * used
            w = self.linv_times(g)
        else:
            w = self.gram.new_zeros(rows, 0)
        gjj = self.gram[atoms, atoms]
        l2 = gjj - (w * w).sum(1)
        ok = live & (l2 > self.eps * gjj)  # scikit-learn's test, relative so the atoms' scale does not matter
        l = torch.sqrt(torch.where(ok, l2, torch.ones_like(l2)))
        if bool(ok.any()):
            row = self.linv.new_zeros(rows, m + 1)
            if m:
                row[:, :m] = -self.linv_t_times(w) / l[:, None]
            row[ar, pos.clamp(max=m)] = 1.0 / l
            okr = ok.nonzero().squeeze(1)
            p = pos[okr]
            # the new row replaces an identity row, so only columns [0, m] change
            self.linv[okr, p, : m + 1] = row[okr]
            self.linv_t[okr, : m + 1, p] = row[okr]
            self.idx[okr, p] = atoms[okr]
            self.n[okr] += 1
        return ok, w, l

    def remove(self, b: int, slot: int) -> None:
        """Drop slot ``slot`` of signal ``b`` (a lasso coefficient crossed zero).

        Drops are rare, so the factor is rebuilt for that one signal rather than
        downdated in place.
        """
        n = int(self.n[b])
        keep = [i for i in range(n) if i != slot]
        for t in [self.idx, *self.slots.values()]:
            t[b, : n - 1] = t[b, keep].clone()
            t[b, n - 1] = 0
        self.n[b] = n - 1
        cap = self.capacity
        linv = torch.eye(cap, dtype=self.linv.dtype, device=self.linv.device)
        if n > 1:
            sel = self.idx[b, : n - 1]
            chol = torch.linalg.cholesky(self.gram[sel][:, sel])
            eye = torch.eye(n - 1, dtype=chol.dtype, device=chol.device)
            linv[: n - 1, : n - 1] = torch.linalg.solve_triangular(chol, eye, upper=False)
        self.linv[b] = linv
        self.linv_t[b] = linv.T
