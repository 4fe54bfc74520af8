"""The habits a contributor expects, checked: ruff's lint and format, and mypy on the package.

The settings live in pyproject.toml (``[tool.ruff]``, ``[tool.mypy]``). Modules listed there under
mypy's ``ignore_errors`` are not yet type-clean; every other module is checked, so a new module is
typed from its first commit. Each check is also shown failing on a planted fault, so a setting that
silently checks nothing would be caught.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["multiseal", "tests", "benchmarks", "scenarios", "scripts", "analysis"]


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing_to_lint():
    done = _run("ruff", "check", "--no-cache", *SOURCES)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_code_is_formatted_as_ruff_formats_it():
    done = _run("ruff", "format", "--check", "--no-cache", *SOURCES)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_passes_on_the_package(tmp_path):
    done = _run("mypy", "--cache-dir", str(tmp_path / "cache"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success" in done.stdout


def test_the_checks_see_a_planted_fault(tmp_path):
    shutil.copytree(ROOT / "multiseal", tmp_path / "multiseal", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "multiseal" / "sim" / "planted.py").write_text(
        "import os\n\n\ndef rounds() -> int:\n    return 'three'\n"
    )
    lint = _run("ruff", "check", "--no-cache", "multiseal", cwd=tmp_path)
    assert lint.returncode != 0 and "F401" in lint.stdout  # the unused import
    types = _run("mypy", "--cache-dir", str(tmp_path / "cache"), cwd=tmp_path)
    assert types.returncode != 0 and "multiseal/sim/planted.py:5" in types.stdout  # str returned as int
