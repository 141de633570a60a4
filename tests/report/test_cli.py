"""``probe report DIR``: writes the page, prints its path, errors in one line."""
from __future__ import annotations

import argparse
import json

from probe.cli import report as cli


def run(argv):
    parser = argparse.ArgumentParser(prog="probe")
    cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", *argv])
    return args.func(args)


def test_cli_writes_the_page_and_prints_its_path(built, tmp_path, capsys):
    out = tmp_path / "page.html"
    assert run([str(built["root"] / "attractors"), "--out", str(out), "--trajectories", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"report": str(out.resolve())}
    assert out.read_text().startswith("<!doctype html>")


def test_cli_errors_are_one_line_through_main(tmp_path, capsys):
    from probe.cli.main import SUBCOMMANDS, main

    if "report" not in SUBCOMMANDS:  # registered by the lead
        import pytest

        pytest.skip("probe.cli.main does not list 'report' yet")
    assert main(["report", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no result folder at" in err
