"""``probe report DIR``: one self-contained HTML page for a result folder (or a folder of several).

The page shows every table and figure of each result with the settings that made it: for an
attractor set the decoded attractors by basin size (click one to open its basin), film strips
of trajectories, the residual decay, the spectral-radius histogram and the dynamics verdict;
for dictionary, OOD, compare, basins and memorization results their tables, curves and
galleries. Images are embedded: the file opens offline, from anywhere.

    probe report demo-out                      # -> demo-out/report.html
    probe report runs/taef2 --out taef2.html --model ../shared/models/taef2
"""
from __future__ import annotations

import argparse
import json


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("report", help="one self-contained HTML page for a result folder",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", metavar="DIR", help="a result folder, or a folder holding several")
    p.add_argument("--out", metavar="FILE.html", help="where to write the page (default DIR/report.html)")
    p.add_argument("--model", metavar="SPEC", help="model to decode latents with, when the result's own "
                                                   "cannot be loaded from what it recorded")
    p.add_argument("--trajectories", metavar="N", type=int, default=4,
                   help="film strips of trajectories per attractor set (default 4; 0 = none)")
    p.add_argument("--device", metavar="DEV", help="device for decoding and the film strips (default cpu)")
    p.add_argument("--json", action="store_true", help="print {\"report\": PATH} instead of the path")
    p.add_argument("--quiet", action="store_true", help="print nothing")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..errors import ProbeError
    from ..report import write_report

    if args.trajectories < 0:
        raise ProbeError(f"--trajectories must be 0 or more, got {args.trajectories}")
    path = write_report(args.folder, args.out, model=args.model, trajectories=args.trajectories, device=args.device)
    if args.json:
        print(json.dumps({"report": str(path.resolve())}))
    elif not args.quiet:
        print(f"report: {path.resolve()}")
    return 0
