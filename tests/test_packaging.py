"""Packaging: the project builds with the installed setuptools and prints no deprecation warning (PEP 639 license)."""
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_builds_offline_without_deprecation_warnings(tmp_path: Path):
    """`project.license` as a TOML table is deprecated (setuptools: builds fail from 2027-02-18); the SPDX string
    needs setuptools >= 77, so the build uses the environment's setuptools (no isolation, no download)."""
    assert int(version("setuptools").split(".")[0]) >= 77, "the test extras pin a setuptools that reads PEP 639"
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-v",
         "--wheel-dir", str(tmp_path / "dist"), str(project)],
        capture_output=True, text=True, timeout=120,
    )
    output = built.stdout + built.stderr
    assert built.returncode == 0, output
    warnings = [line for line in output.splitlines() if "deprecat" in line.lower()]
    assert warnings == [], "\n".join(warnings)
    wheel = next((tmp_path / "dist").glob("proctovision-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(next(name for name in archive.namelist() if name.endswith("METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in metadata.splitlines()
