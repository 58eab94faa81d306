"""The layer rules of README's Architecture section, enforced with import-linter's contracts in pyproject.toml."""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint(source_root: Path) -> subprocess.CompletedProcess:
    """Run every contract against the package found under ``source_root`` (its own copy of src/)."""
    environment = {**os.environ, "PYTHONPATH": str(source_root)}
    return subprocess.run([str(LINT_IMPORTS), str(ROOT / "pyproject.toml"), "--no-cache"], cwd=source_root,
                          env=environment, capture_output=True, text=True, timeout=120)


@pytest.fixture()
def package_copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "src" / "proctovision", tmp_path / "proctovision",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return tmp_path


def test_every_contract_is_kept():
    result = lint(ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("core/tasks.py", "from proctovision.workflows import training", "Layers"),
    ("imaging/images.py", "    from proctovision.data import manifest  # inside a function", "Layers"),
    ("evaluation/metrics.py", "import matplotlib.pyplot", "Only reporting draws"),
    ("workflows/training.py", "import fastapi", "Only serving and the reading room speak HTTP"),
    ("serving/audit.py", "import typer", "Only the CLI parses command lines"),
    ("data/pixel_cache.py", "    from proctovision.data import datasets  # datasets imports pixel_cache", "No import cycle"),
])
def test_a_forbidden_import_breaks_a_contract(package_copy: Path, module: str, line: str, contract: str):
    target = package_copy / "proctovision" / module
    text = target.read_text()
    if line.startswith("    "):
        text += f"\n\ndef _breaks_the_rule():\n{line}\n"
    else:
        text += f"\n{line}\n"
    target.write_text(text)
    result = lint(package_copy)
    assert result.returncode != 0, result.stdout
    broken = [row for row in result.stdout.splitlines() if row.rstrip().endswith("BROKEN")]
    assert any(row.startswith(contract) for row in broken), result.stdout


def test_no_source_file_is_over_450_lines():
    long = {str(path.relative_to(ROOT)): count for path in (ROOT / "src").rglob("*.py")
            if (count := len(path.read_text(encoding="utf-8").splitlines())) > 450}
    assert long == {}


def test_every_package_says_what_it_holds():
    silent = [str(init.parent.relative_to(ROOT)) for init in (ROOT / "src" / "proctovision").rglob("__init__.py")
              if len(ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or "") < 40]
    assert silent == []
