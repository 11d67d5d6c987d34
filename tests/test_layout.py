"""The tree shows the architecture: dependencies point one way, the torch-free parts stay free of
torch, and an installed project is one package, ``vq4all``."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Each part of the project (a folder, as its installed name) and the parts it may import:
#: golden <- hw <- sim.arch <- {sim.rtl, sim.energy}; golden <- model <- vq4all.
ALLOWED = {
    "vq4all.golden": {"vq4all.golden"},
    "vq4all.hw": {"vq4all.golden", "vq4all.hw"},
    "vq4all.sim.arch": {"vq4all.golden", "vq4all.hw", "vq4all.sim.arch"},
    "vq4all.sim.rtl": {"vq4all.golden", "vq4all.hw", "vq4all.sim.arch", "vq4all.sim.rtl"},
    "vq4all.sim.energy": {"vq4all.golden", "vq4all.hw", "vq4all.sim.arch", "vq4all.sim.energy"},
    "vq4all.model": {"vq4all.golden", "vq4all.model"},
}
FOLDERS = {
    "vq4all.golden": ROOT / "golden",
    "vq4all.hw": ROOT / "hw",
    "vq4all.sim.arch": ROOT / "sim" / "arch",
    "vq4all.sim.rtl": ROOT / "sim" / "rtl",
    "vq4all.sim.energy": ROOT / "sim" / "energy",
    "vq4all.model": ROOT / "model",
}
#: Third-party packages a part must not import at all.
FORBIDDEN = {"vq4all.hw": {"torch", "cocotb"}, "vq4all.sim.arch": {"torch", "cocotb"}}


def _part(module: str) -> str | None:
    for part in sorted(ALLOWED, key=len, reverse=True):
        if module == part or module.startswith(part + "."):
            return part
    return "vq4all" if module.split(".")[0] == "vq4all" else None


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def test_dependencies_point_one_way() -> None:
    wrong = []
    for part, folder in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            for module in _imports(path):
                target = _part(module)
                top = module.split(".")[0]
                if target is not None and target not in ALLOWED[part]:
                    wrong.append(f"{path.relative_to(ROOT)} imports {module}")
                if top in FORBIDDEN.get(part, ()):
                    wrong.append(f"{path.relative_to(ROOT)} imports {module}")
                if top in ("golden", "hw", "sim", "model"):  # the folders' names are not packages
                    wrong.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not wrong, wrong


def test_the_hardware_and_the_architecture_model_import_no_torch() -> None:
    modules = [
        f"vq4all.{path.relative_to(ROOT).with_suffix('').as_posix().replace('/', '.')}"
        for folder in (ROOT / "hw", ROOT / "sim" / "arch")
        for path in sorted(folder.rglob("*.py"))
    ]
    code = (
        f"import importlib, sys; [importlib.import_module(m) for m in {modules!r}]; "
        "bad = [m for m in ('torch', 'cocotb') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT.parent)


@pytest.mark.slow
def test_an_installed_project_is_one_package(tmp_path) -> None:
    """The wheel that ``pip install .`` installs holds ``vq4all`` and its dist-info alone, with
    the data files that the simulator and the energy model read."""
    # A copy of the sources: building in place would leave setuptools' build/ in the tree.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".*", "build", "__pycache__"))
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path)]
    subprocess.run([*pip, str(source)], check=True)
    (wheel,) = tmp_path.glob("vq4all-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {
        "vq4all",
        wheel.name.split("-py")[0] + ".dist-info",
    }
    for data in ("sim/rtl/harness.cpp", "sim/rtl/verilator.vlt", "sim/energy/ert/22nm.yaml"):
        assert f"vq4all/{data}" in names
    assert "vq4all/hw/fpga/synth.py" in names and "vq4all/model/workloads/zoo.py" in names
