"""Run every speed benchmark in benchmarks/ and write one markdown report for this device.

    python benchmarks/run_all.py                      # every bench_*.py, default settings
    python benchmarks/run_all.py --quick --threads 1  # the CPU variants in minutes
    python benchmarks/run_all.py --only step,solver

Each ``bench_<name>.py`` is run as its own process (a crash or a timeout in one does not
lose the others) and prints a markdown section on stdout. Options a script declares in
its ``--help`` (``--device``, ``--quick``, ``--threads``) are passed on; others are not.
The report, ``benchmarks/results/speed_<device>.md``, names the device, torch version,
thread count and the exact command, so numbers from different machines never mix.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PASSED_ON = ("--device", "--quick", "--threads")


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def device_name(device: str) -> str:
    """What the device is, in words: the GPU's name, or the CPU model and its core count."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model} ({os.cpu_count()} logical cores visible)"


def device_slug(device: str) -> str:
    if not device.startswith("cuda"):
        return "cpu"
    return re.sub(r"[^a-z0-9]+", "-", device_name(device).lower()).strip("-") or "cuda"


def environment(device: str, threads: int | None) -> list[str]:
    """The lines every benchmark report starts with."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    load = ""
    if hasattr(os, "getloadavg"):
        load = ", load average {:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg())
    return [f"- device: **{device_name(device)}** (`{device}`)",
            f"- torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s){load}",
            f"- python {platform.python_version()}, {platform.platform()}",
            f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}, commit {_commit()}"]


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])


def _accepts(script: Path) -> set[str]:
    try:
        out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return set()
    return {flag for flag in PASSED_ON if flag in out.stdout}


def run_one(script: Path, args: argparse.Namespace) -> tuple[str, float, int]:
    accepted = _accepts(script)
    cmd = [sys.executable, str(script)]
    if "--device" in accepted:
        cmd += ["--device", args.device]
    if "--quick" in accepted and args.quick:
        cmd += ["--quick"]
    if "--threads" in accepted and args.threads:
        cmd += ["--threads", str(args.threads)]
    t0 = time.perf_counter()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, cwd=HERE.parent)
        code, text, err = out.returncode, out.stdout, out.stderr
    except subprocess.TimeoutExpired as e:
        code, text, err = -1, (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or ""), \
            f"timed out after {args.timeout} s"
    seconds = time.perf_counter() - t0
    shown = " ".join(shlex.quote(c) for c in [Path(cmd[0]).name, *[str(Path(c).relative_to(HERE.parent)) if c == str(script) else c for c in cmd[1:]]])
    body = [f"## {script.stem}", "", f"`{shown}` - exit {code}, {seconds:.0f} s", ""]
    body.append(_markdown(text, err))
    if code != 0:
        tail = "\n".join(err.strip().splitlines()[-15:])
        body += ["", "**failed**; last lines of stderr:", "", "```", tail, "```"]
    return "\n".join(body) + "\n", seconds, code


def _markdown(stdout: str, stderr: str) -> str:
    """The script's markdown: its stdout, or else the .md files it says it wrote ("wrote X.md")."""
    if "|" in stdout:
        return stdout.strip()
    found = []
    for path in re.findall(r"wrote (\S+?\.md)\b", stdout + "\n" + stderr):
        f = Path(path) if Path(path).is_absolute() else HERE.parent / path
        if f.is_file() and f not in found:
            found.append(f)
    if found:
        return "\n\n".join(f"_from {f.relative_to(HERE.parent) if f.is_relative_to(HERE.parent) else f}:_\n\n"
                           + f.read_text().strip() for f in found)
    return stdout.strip() or "_(no output)_"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--quick", action="store_true", help="small sizes, few steps (what CI and a CPU can afford)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads for every benchmark")
    p.add_argument("--only", default=None, help="comma-separated names (step,solver,field,sparse)")
    p.add_argument("--timeout", type=int, default=3600, help="seconds allowed per benchmark")
    p.add_argument("--out", default=None, help="report path (default benchmarks/results/speed_<device>.md)")
    args = p.parse_args(argv)
    args.device = args.device or default_device()
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        wanted = {w.strip() for w in args.only.split(",")}
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in wanted]
    if not scripts:
        print("no benchmarks selected", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else RESULTS / f"speed_{device_slug(args.device)}.md"
    head = ["# Speed benchmarks", "", *environment(args.device, args.threads), f"- command: `{command_line()}`", ""]
    sections, failed = [], 0
    for script in scripts:
        print(f"running {script.name} ...", file=sys.stderr, flush=True)
        text, seconds, code = run_one(script, args)
        failed += code != 0
        sections.append(text)
        print(f"  {script.name}: exit {code} in {seconds:.0f} s", file=sys.stderr, flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(head + sections))  # keep what is done if a later benchmark hangs
    print(f"wrote {out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
