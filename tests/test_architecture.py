"""The layering is enforced: import-linter's `layers` contract (pyproject.toml) and no import cycles.

Both count imports inside functions too (grimp parses every import statement). A change that reaches
upward — say ``multiseal.world`` importing ``multiseal.run`` — fails here with the offending import
named, before it can reach main.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
LINT = [
    sys.executable,
    "-c",
    "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())",
]


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"}
    return subprocess.run(LINT + ["--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_layers_contract_is_kept():
    done = _lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "multiseal layers KEPT" in done.stdout


def test_an_upward_import_breaks_the_contract_and_is_named(tmp_path):
    shutil.copytree(ROOT / "multiseal", tmp_path / "multiseal", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "multiseal" / "world" / "leak.py").write_text("from multiseal.run.tracking import tracking_uri\n")
    done = _lint(tmp_path)
    assert done.returncode != 0
    assert "multiseal layers BROKEN" in done.stdout
    assert "multiseal.world.leak -> multiseal.run.tracking" in done.stdout


def test_no_module_is_part_of_an_import_cycle():
    graph = grimp.build_graph("multiseal")
    imports = nx.DiGraph()
    for module in graph.modules:
        imports.add_node(module)
        for imported in graph.find_modules_directly_imported_by(module):
            imports.add_edge(module, imported)
    cycles = [sorted(c) for c in nx.strongly_connected_components(imports) if len(c) > 1]
    assert cycles == []


def test_no_module_needs_type_checking_imports():
    offenders = [
        str(p.relative_to(ROOT)) for p in (ROOT / "multiseal").rglob("*.py") if "TYPE_CHECKING" in p.read_text()
    ]
    assert offenders == []


def test_the_round_loop_is_the_stages_and_no_mixin():
    """``Simulation`` is one plain class over a setup and a state; the loop module stays short."""
    from multiseal.sim.loop import Simulation

    assert Simulation.__bases__ == (object,)
    assert len((ROOT / "multiseal" / "sim" / "loop.py").read_text().splitlines()) < 300
    stages = sorted(p.stem for p in (ROOT / "multiseal" / "sim" / "stages").glob("*.py") if p.stem != "__init__")
    assert stages == ["adapt", "arrive", "evaluate", "measure", "retell", "schedule", "share", "write"]
