"""The README's code runs as written: its Python blocks, and the "your own model" commands."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
MODULE = next(b for b in BLOCKS if b.startswith("# my_models.py"))
SCRIPTS = [b for b in BLOCKS if b is not MODULE]
FASHION = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")


def _run(code: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(cwd), "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_the_readme_has_its_code_blocks():
    assert len(SCRIPTS) >= 2 and "probe.wrap" in SCRIPTS[0] and "find_feature_images" in SCRIPTS[1]


@pytest.mark.parametrize("index", range(len(SCRIPTS)))
def test_each_python_block_runs_as_written(index, tmp_path):
    code = SCRIPTS[index]
    if "fashion-mnist" in code and not FASHION.is_file():
        pytest.skip(f"Fashion-MNIST is not installed at {FASHION} (make data installs it)")
    (tmp_path / "my_models.py").write_text(MODULE)
    done = _run(code, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_own_model_commands_run_as_written(tmp_path):
    (tmp_path / "my_models.py").write_text(MODULE)
    section = README[README.index("## Your own model"):README.index("## The method")]
    commands = [line.strip() for line in section.splitlines() if line.startswith("    probe ")]
    assert [c.split()[1] for c in commands] == ["info", "run", "features"]
    for command in commands:
        if "fashion-mnist" in command and not FASHION.is_file():
            continue
        argv = command.split()[1:] + (["--quiet"] if command.split()[1] != "info" else [])
        code = f"import sys; from probe.cli.main import main; sys.exit(main({argv!r}))"
        done = _run(code, tmp_path)
        assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
    assert (tmp_path / "runs" / "mine").is_dir()


def test_every_lazy_name_of_the_front_door_is_exported_and_loads():
    import probe

    assert set(probe._LAZY) <= set(probe.__all__)
    for name in probe.__all__:
        assert getattr(probe, name) is not None, name
