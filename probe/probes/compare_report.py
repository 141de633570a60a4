"""The comparison's result: per-item numbers keyed by tuples, the two models, the decoded sets."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..result import Result
from .tables import markdown_table, mean_ci, paired, verdict

__all__ = ["ComparisonReport"]


@dataclass
class ComparisonReport(Result):
    """Result of :func:`compare`.

    ``values`` holds per-item numbers (per attractor, per seed) under tuple keys such as
    ``("latent", "A->B", "max_cos")``, ``("latent", "agree")``, ``("pixel", "A->B", "attractors", "mse")``,
    ``("set", "A->B", "max_cos")`` (centred pixel cosine); ``images`` uint8 decoded attractors (``"A"``,
    ``"B"``) and their cross-codes (``("A->B", "attractors")``) for the grid.
    """

    config: dict
    models: dict            #: side -> spec, map.describe(), resolution, latent shape, convention, atoms info
    shared: dict            #: {"shared": bool, "why": str}
    scalars: dict           #: ARI, basin counts, non-zeros, common convention ...
    values: dict[tuple, Tensor]
    images: dict[str | tuple, Tensor]

    def stat(self, key: tuple):
        return mean_ci(self.values[key])

    # -- the Result contract -------------------------------------------------------------
    def _tensors(self) -> dict:
        return {**{f"value{i}": v for i, v in enumerate(self.values.values())},
                **{f"image{i}": v for i, v in enumerate(self.images.values())}}

    def _meta(self) -> dict:
        return {"config": self.config, "model": {s: self.models[s].get("model") for s in ("A", "B")},
                "models": self.models, "shared": self.shared, "scalars": self.scalars,
                "values": [list(k) for k in self.values], "images": [k if isinstance(k, str) else list(k)
                                                                      for k in self.images]}

    @classmethod
    def _from_saved(cls, tensors: dict, meta: dict) -> ComparisonReport:
        key = lambda k: k if isinstance(k, str) else tuple(k)  # noqa: E731
        return cls(meta["config"], meta["models"], meta["shared"], meta["scalars"],
                   {tuple(k): tensors[f"value{i}"] for i, k in enumerate(meta["values"])},
                   {key(k): tensors[f"image{i}"] for i, k in enumerate(meta["images"])})

    def to_rows(self) -> list[dict]:
        """One row per measure: its space, direction and name, mean and 95% interval over items."""
        rows = []
        for k in self.values:
            space, *rest = k
            direction = rest[0] if rest and "->" in rest[0] else ""
            measure = " ".join(rest[1:] if direction else rest)
            rows.append({"space": space, "direction": direction, "measure": measure, **self.stat(k).as_dict()})
        return rows

    # -- tables -----------------------------------------------------------------------
    def _side_line(self, s: str) -> str:
        m, a = self.models[s], self.models[s]["atoms"]
        ends = a["atoms_are"] == "end points"
        what = a["atoms_are"] + (f" after {a['max_steps']} steps (NOT attractors)" if ends else "")
        return (f"- **{s}** = `{m['spec']}` ({m['map']['name']}; latent {tuple(m['latent_shape'])}, images "
                f"{m['channels']} x {m['resolution']} px): {a['n_fixed_points']} fixed points, {a['n_stable']} stable, "
                f"from {a['n_seeds']} seeds (merge cosine > {self.config['field']['merge_threshold']}); dynamics "
                f"{a['verdict']}; dictionary = {a['n_atoms']} {what}"
                + (f" (NOTE: {a['other_model']})" if a.get("other_model") else ""))

    def _row3(self, name: str, space: str, measure: str, ref: str | None, digits: int = 4) -> list[str]:
        ab, ba = self.stat((space, "A->B", measure)), self.stat((space, "B->A", measure))
        sym = (ab.mean + ba.mean) / 2
        row = [name, ab.format(digits), ba.format(digits), f"{sym:.{digits}g}"]
        if ref is not None:
            rab, rba = self.stat((space, "A->B", ref)), self.stat((space, "B->A", ref))
            row.append(f"{(rab.mean + rba.mean) / 2:.{digits}g} (A->B {rab.mean:.3g}, B->A {rba.mean:.3g})")
        return row

    def to_markdown(self) -> str:
        sc, thr = self.scalars, self.config["field"]["merge_threshold"]
        out = ["## Model comparison: A vs B\n", self._side_line("A"), self._side_line("B"),
               f"- latent space: **{'shared' if self.shared['shared'] else 'not shared'}** ({self.shared['why']})\n"]
        if ("latent", "A->B", "max_cos") in self.values:
            head = ["measure (latent space)", "A->B", "B->A", "symmetric", "reference"]
            rows = [self._row3("Chamfer similarity (mean best cosine)", "latent", "max_cos", "ref_max_cos")]
            note = "Chamfer reference: Gaussian N(0, I) points, as many as the other set."
            if ("latent", "agree") in self.values:
                agree, ref = self.stat(("latent", "agree")), self.stat(("latent", "agree_ref"))
                rows += [[f"basin agreement (same seed, ends match: cosine > {thr})", "", "", agree.format(4),
                          f"{ref.mean:.4g} (B's seeds shuffled)"],
                         ["adjusted Rand index of the basins", "", "", f"{sc['ari']:.4g}",
                          "0 (chance, by construction)"]]
                note += (f" Agreement over {agree.n} seeds ({sc['both_converged']} converged in both); "
                         f"basins: A {sc['basins'][0]}, B {sc['basins'][1]}.")
            else:
                note += f" No basin agreement: {sc['agreement_skipped']}."
            out += [markdown_table(head, rows), "\n" + note + "\n"]
        if ("pixel", "A->B", "attractors", "mse") in self.values:
            out.append(f"Pixel space: each model's dictionary images converted to the other's convention, "
                       f"encoded, OMP-coded on the other's dictionary at {100 * self.config['sparsity']:g}% "
                       f"sparsity, decoded, converted back; MSE against the originals (mean [95% CI] over images).\n")
            rows = []
            for d in ("A->B", "B->A"):
                src, dst = d.split("->")
                k, n = sc["n_nonzero"][dst], self.models[dst]["atoms"]["n_atoms"]
                base = ("pixel", d)
                for basis, label in (("attractors", f"{dst}'s {self.models[dst]['atoms']['atoms_are']}"),
                                     ("orthogonal", f"random orthogonal basis of {dst}'s latent (reference)")):
                    rows.append([f"{src}'s images via {dst}", label, f"{k} of {n}",
                                 self.stat((*base, basis, "mse")).format()])
                rows.append([f"{src}'s images via {dst}", f"{dst}'s autoencoder, no coding (floor)", "all",
                             self.stat((*base, "autoencoder", "mse")).format()])
                diff = paired(self.values[(*base, "attractors", "mse")], self.values[(*base, "orthogonal", "mse")])
                rows.append([f"{src}'s images via {dst}", "dictionary vs orthogonal (paired)", "",
                             verdict(diff, "dictionary", "orthogonal")])
            out += [markdown_table(["direction", "dictionary", "non-zeros", "pixel MSE"], rows), ""]
            c = sc["common"]
            head = ["measure (decoded sets)", "A->B", "B->A", "symmetric", "reference (B's / A's pixels shuffled)"]
            rows = [self._row3("Chamfer similarity of pixel correlation (centred cosine)", "set", "max_cos",
                               "ref_max_cos"),
                    self._row3("nearest-neighbour pixel MSE", "set", "nn_mse", "ref_nn_mse")]
            out += [f"Decoded sets compared at {c['channels']} x {c['size']} px:\n", markdown_table(head, rows), ""]
        return "\n".join(out)

    def summary(self) -> list[str]:
        lines = [f"latent space {'shared' if self.shared['shared'] else 'not shared'}: {self.shared['why']}"]
        if ("latent", "A->B", "max_cos") in self.values:
            ab, ba = self.stat(("latent", "A->B", "max_cos")).mean, self.stat(("latent", "B->A", "max_cos")).mean
            lines.append(f"Chamfer similarity {(ab + ba) / 2:.4f} (A->B {ab:.4f}, B->A {ba:.4f})")
        if ("latent", "agree") in self.values:
            agree, ref = self.stat(("latent", "agree")).mean, self.stat(("latent", "agree_ref")).mean
            lines.append(f"basin agreement {agree:.4f} (B's seeds shuffled {ref:.4f}); ARI {self.scalars['ari']:.4f}")
        if ("pixel", "A->B", "attractors", "mse") in self.values:
            for d in ("A->B", "B->A"):
                mse = {b: self.stat(("pixel", d, b, "mse")).mean for b in ("attractors", "orthogonal", "autoencoder")}
                lines.append(f"cross-reconstruction {d}: MSE {mse['attractors']:.5f} (orthogonal "
                             f"{mse['orthogonal']:.5f}, autoencoder {mse['autoencoder']:.5f})")
            ab, ba = self.stat(("set", "A->B", "max_cos")).mean, self.stat(("set", "B->A", "max_cos")).mean
            lines.append(f"decoded sets: Chamfer pixel correlation {(ab + ba) / 2:.4f}")
        return lines

    # -- pictures -------------------------------------------------------------------
    def grids(self, folder: str | Path) -> Path:
        """``folder/compare.png``: A's column and B's column side by side, each with three rows:
        decoded dictionary, coded via the other model's attractors, coded via its orthogonal basis."""
        from PIL import Image, ImageDraw

        from ..images import grid
        from ..io import atomic_write

        panels = []
        for s, other in (("A", "B"), ("B", "A")):
            rows = [(k, lab) for k, lab in ((f"{s}", f"{s}"), ((f"{s}->{other}", "attractors"), f"via {other}"),
                                            ((f"{s}->{other}", "orthogonal"), "orth.")) if k in self.images]
            n = len(self.images[s])
            ims = torch.cat([self.images[k][:n] for k, _ in rows]).float() / 255
            side = max(64, ims.shape[-1])
            ims = F.interpolate(ims, size=(side, side), mode="nearest")
            labels = [f"{lab} #{i}" for _, lab in rows for i in range(n)]
            panels.append((s, grid(ims, nrow=n, labels=labels)))
        w = sum(p.width for _, p in panels) + 30
        h = max(p.height for _, p in panels) + 16
        canvas = Image.new("RGB", (w, h), "white")
        draw, x = ImageDraw.Draw(canvas), 0
        for s, p in panels:
            draw.text((x + 4, 2), f"{s}: {self.models[s]['map']['name']}", fill="black")
            canvas.paste(p, (x, 16))
            x += p.width + 30
        path = Path(folder) / "compare.png"
        atomic_write(path, lambda tmp: canvas.save(tmp, format="PNG"))
        return path
