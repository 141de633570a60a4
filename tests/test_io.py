"""One atomic writer (modes, one-line failures, no temp left) and OutputFolder (lock, settings, overwrite)."""
from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys

import pytest
import torch

from probe import files, io
from probe.errors import ProbeError
from probe.io import OutputFolder, atomic_write, save_json, save_tensors


def umask_mode() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return 0o666 & ~old


def dead_pid() -> int:
    """The pid of a process that has ended."""
    r = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(r.stdout)


def no_temps(folder) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_atomic_write_mode_and_no_temp(tmp_path):
    save_tensors(tmp_path / "t.safetensors", {"x": torch.ones(3)})
    save_json(tmp_path / "m.json", {"a": float("nan")})
    for f in tmp_path.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == umask_mode(), f
    assert no_temps(tmp_path) and json.loads((tmp_path / "m.json").read_text()) == {"a": "nan"}


def test_failed_write_keeps_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")

    def boom(tmp):
        open(tmp, "w").write("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(ProbeError) as e:
        atomic_write(target, boom, what="the attractor set")
    msg = str(e.value)
    assert "\n" not in msg and "could not save the attractor set" in msg and "disk is full" in msg
    assert target.read_text() == "old" and no_temps(tmp_path)


def test_safetensors_error_text_is_one_line(tmp_path):
    class SafetensorError(Exception):
        pass

    def boom(tmp):
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "
                              "\"No space left on device\" }) (os error 28)")

    with pytest.raises(ProbeError, match="disk is full"):
        atomic_write(tmp_path / "x.safetensors", boom)


def test_not_a_directory_names_the_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ProbeError, match=r"f is a file, not a folder"):
        save_json(tmp_path / "f" / "sub" / "m.json", {})


def test_interrupt_leaves_no_temp(tmp_path):
    def interrupted(tmp):
        open(tmp, "w").write("x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "k.txt", interrupted)
    assert no_temps(tmp_path) and not (tmp_path / "k.txt").exists()


def test_stale_temp_of_a_killed_writer_is_removed_on_the_next_write(tmp_path):
    code = ("import os, sys; from probe.io import atomic_write\n"
            "atomic_write(sys.argv[1], lambda tmp: (open(tmp, 'w').write('x' * 1000), os._exit(9)))")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "big.bin")])
    assert r.returncode == 9 and not no_temps(tmp_path)  # the kill left it
    live = tmp_path / f".other.{os.getppid()}-0123abcd.tmp"  # a live process's temp stays
    live.write_text("busy")
    files._cleaned.discard(tmp_path)
    save_json(tmp_path / "m.json", {})
    assert [p.name for p in tmp_path.glob("*.tmp")] == [live.name]


def test_load_errors_are_one_line(tmp_path):
    (tmp_path / "t.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"x\":")
    with pytest.raises(ProbeError, match="damaged or not a safetensors file"):
        io.load_tensors(tmp_path / "t.safetensors")
    (tmp_path / "m.json").write_text("{")
    with pytest.raises(ProbeError, match="not valid JSON"):
        io.load_json(tmp_path / "m.json")


def test_csv_columns_in_order_of_first_appearance(tmp_path):
    io.save_csv(tmp_path / "t.csv", [{"a": 1, "b": 2}, {"a": 3, "c": float("inf")}])
    assert (tmp_path / "t.csv").read_text().splitlines() == ["a,b,c", "1,2,", "3,,inf"]


# -- OutputFolder -------------------------------------------------------------------------------
S = {"config": {"n_seeds": 8, "batch_size": 4}}


def test_fresh_then_reuse_then_resume(tmp_path):
    out = tmp_path / "o"
    with OutputFolder(out, S) as f:
        assert f.path == out and not f.finished and (out / ".lock").is_file()
        (f.path / "r.txt").write_text("done")
    assert not (out / ".lock").exists() and json.loads((out / "settings.json").read_text())["finished"]
    with OutputFolder(out, {"config": {"n_seeds": 8, "batch_size": 64}}) as f:  # batch size does not count
        assert f.finished and "reusing" in f.note
    with pytest.raises(RuntimeError), OutputFolder(tmp_path / "p", S):
        raise RuntimeError("killed")
    with OutputFolder(tmp_path / "p", S) as f:
        assert f.resumed and not f.finished and "resuming" in f.note


def test_other_settings_are_refused_naming_overwrite(tmp_path):
    out = tmp_path / "o"
    with OutputFolder(out, S) as f:
        (f.path / "r.txt").write_text("done")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ProbeError) as e, OutputFolder(out, {"config": {"n_seeds": 4096}}):
        pass
    assert "--overwrite" in str(e.value) and "config.n_seeds 8 -> 4096" in str(e.value)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_run_that_stopped_before_any_work_does_not_block_other_settings(tmp_path):
    out = tmp_path / "o"
    with pytest.raises(ProbeError), OutputFolder(out, S):
        raise ProbeError("no such .npz file")  # a bad input, found before anything was computed
    with OutputFolder(out, {"config": {"n_seeds": 4096}}) as f:
        assert not f.finished and not f.resumed
    assert json.loads((out / "settings.json").read_text())["settings"]["config"]["n_seeds"] == 4096


def test_overwrite_replaces_only_when_complete(tmp_path):
    out = tmp_path / "o"
    with OutputFolder(out, S) as f:
        (f.path / "r.txt").write_text("old")
    new = {"config": {"n_seeds": 4096}}
    with pytest.raises(KeyboardInterrupt), OutputFolder(out, new, overwrite=True) as f:
        assert f.path != out
        (f.path / "r.txt").write_text("half")
        raise KeyboardInterrupt
    assert (out / "r.txt").read_text() == "old"
    with OutputFolder(out, new, overwrite=True) as f:
        assert f.resumed and (f.path / "r.txt").read_text() == "half"
        (f.path / "r.txt").write_text("new")
    assert (out / "r.txt").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["o"]
    assert not (out / ".lock").exists()


def test_foreign_files_and_files_in_the_way(tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "notes.txt").write_text("mine")
    with pytest.raises(ProbeError, match="did not make.*--overwrite"), OutputFolder(tmp_path / "o", S):
        pass
    (tmp_path / "file").write_text("x")
    with pytest.raises(ProbeError, match="is a file, not a folder"), OutputFolder(tmp_path / "file", S):
        pass
    with pytest.raises(ProbeError, match="is a file, not a folder"), OutputFolder(tmp_path / "file" / "sub", S):
        pass


def test_second_live_writer_stops_and_a_dead_ones_lock_is_taken_over(tmp_path):
    out = tmp_path / "o"
    with OutputFolder(out, S):
        with pytest.raises(ProbeError, match="in use by another probe process"), OutputFolder(out, S):
            pass
        assert (out / ".lock").is_file()  # the refused writer leaves the first one's lock alone
    (out / ".lock").write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname()}))
    with OutputFolder(out, S):
        assert json.loads((out / ".lock").read_text())["pid"] == os.getpid()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_one_line_before_any_work(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(ProbeError, match="permission denied"), OutputFolder(ro / "o", S):
            pass
    finally:
        ro.chmod(0o700)


def test_every_writer_goes_through_atomic_write():
    """No file under probe/ writes a file itself (only into the temporary file atomic_write hands it)."""
    import ast
    from pathlib import Path

    probe_dir = Path(io.__file__).parent
    writers = {"write_text", "write_bytes", "savefig", "mkstemp", "NamedTemporaryFile", "save_file", "savez",
               "savez_compressed", "_atomic_write"}
    bad = []
    for path in sorted(probe_dir.rglob("*.py")):
        if path.name == "files.py" and path.parent == probe_dir:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name == "save" and isinstance(func, ast.Attribute) and getattr(func.value, "id", "") == "torch":
                name = "torch.save"
            if name == "open" and any(isinstance(a, ast.Constant) and "w" in str(a.value) for a in node.args[1:]):
                name = "open(..., 'w')"
            if name not in writers | {"torch.save", "open(..., 'w')"}:
                continue
            names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            if name not in ("mkstemp", "NamedTemporaryFile", "_atomic_write") and names & {"tmp", "buf", "fh"}:
                continue  # writing into atomic_write's temporary file, or into memory
            bad.append(f"{path.relative_to(probe_dir.parent)}:{node.lineno} {name}")
    assert not bad, "write through probe.io.atomic_write / save_*:\n" + "\n".join(bad)


def test_save_figure_uses_the_object_api_and_leaves_the_backend(tmp_path):
    import matplotlib
    from matplotlib.figure import Figure

    backend = matplotlib.get_backend()
    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    path = io.save_figure(fig, tmp_path / "f.png", dpi=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and matplotlib.get_backend() == backend
    assert stat.S_IMODE(path.stat().st_mode) == umask_mode() and no_temps(tmp_path)


def test_a_kill_during_the_overwrite_swap_is_finished_on_the_next_start(tmp_path, monkeypatch):
    out = tmp_path / "o"
    with OutputFolder(out, S) as f:
        (f.path / "r.txt").write_text("old")
    new = {"config": {"n_seeds": 4096}}
    folder = OutputFolder(out, new, overwrite=True)
    folder.__enter__()
    (folder.path / "r.txt").write_text("new")
    monkeypatch.setattr(OutputFolder, "_swap", lambda self: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        folder.finish()  # killed after the new result was marked complete, before the swap
    monkeypatch.undo()
    for lock in tmp_path.rglob(".lock"):  # the killed process's locks
        lock.write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname()}))
    with OutputFolder(out, new) as f:  # the next start swaps the complete result in and reuses it
        assert f.finished and (out / "r.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]
