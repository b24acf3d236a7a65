"""The package's layering, checked by scripts/check_layers.py, and the checker itself on synthetic trees."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "check_layers.py"


@pytest.fixture(scope="module")
def checker():
    spec = importlib.util.spec_from_file_location("check_layers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_layers"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("check_layers", None)


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "featgeom_tda" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_package_respects_its_layers():
    run = subprocess.run([sys.executable, str(SCRIPT), str(REPO / "src")], capture_output=True, text=True)
    assert run.returncode == 0, "layer violations:\n" + run.stdout + run.stderr


def test_a_clean_tree_passes(checker, tmp_path):
    root = _tree(tmp_path, {
        "__init__.py": "",
        "core/__init__.py": "",
        "core/_validation.py": "",
        "sources/__init__.py": "",
        "sources/corpus.py": "from featgeom_tda.core import _validation\nfrom ..core._validation import x\n",
        "pipeline/__init__.py": "from . import runner\n",
        "pipeline/runner.py": "def f():\n    from featgeom_tda.sources.corpus import g\n",
    })  # fmt: skip
    assert checker.check(root) == []
    run = subprocess.run([sys.executable, str(SCRIPT), str(root)], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout == ""


def test_upward_imports_anywhere_in_a_module_are_reported(checker, tmp_path):
    root = _tree(tmp_path, {
        "__init__.py": "",
        "core/__init__.py": "",
        "core/types.py": "def f():\n    from featgeom_tda.analyses import matching\n",
        "sources/__init__.py": "",
        "sources/models.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..pipeline.runner import Run\n"
        ),
        "analyses/__init__.py": "",
        "analyses/matching.py": "",
        "pipeline/__init__.py": "from featgeom_tda import __version__\n",
        "pipeline/runner.py": "",
    })  # fmt: skip
    problems = checker.check(root)
    assert any(p.startswith("upward import: featgeom_tda.core.types (line 2) [core] imports "
                            "featgeom_tda.analyses.matching [analyses]") for p in problems)  # fmt: skip
    assert any("featgeom_tda.sources.models (line 3) [sources] imports featgeom_tda.pipeline.runner [pipeline]" in p
               for p in problems)  # fmt: skip
    assert any("featgeom_tda.pipeline (line 1) [pipeline] imports featgeom_tda [api]" in p for p in problems)
    assert len(problems) == 3
    run = subprocess.run([sys.executable, str(SCRIPT), str(root)], capture_output=True, text=True)
    assert run.returncode == 1 and run.stdout.splitlines() == problems


def test_import_cycles_are_reported_with_their_modules(checker, tmp_path):
    root = _tree(tmp_path, {
        "__init__.py": "",
        "analyses/__init__.py": "",
        "analyses/a.py": "from featgeom_tda.analyses import b\n",
        "analyses/b.py": "def f():\n    import featgeom_tda.analyses.c\n",
        "analyses/c.py": "from .a import x\n",
        "analyses/d.py": "from . import a\n",
    })  # fmt: skip
    problems = checker.check(root)
    assert problems == [
        "import cycle: featgeom_tda.analyses.a -> featgeom_tda.analyses.b -> featgeom_tda.analyses.c"
        " -> featgeom_tda.analyses.a"
    ]


def test_private_modules_of_other_packages_are_reported_except_core(checker, tmp_path):
    root = _tree(tmp_path, {
        "__init__.py": "",
        "core/__init__.py": "",
        "core/_cache.py": "",
        "analyses/__init__.py": "",
        "analyses/_kernel.py": "",
        "analyses/matching.py": "from ._kernel import k\nfrom featgeom_tda.core._cache import fingerprint\n",
        "pipeline/__init__.py": "",
        "pipeline/runner.py": "from featgeom_tda.analyses._kernel import k\n",
    })  # fmt: skip
    assert checker.check(root) == [
        "private import: featgeom_tda.pipeline.runner (line 1) imports featgeom_tda.analyses._kernel of another package"
    ]


def test_relative_imports_resolve_from_packages_and_modules(checker, tmp_path):
    """Pins the checker's private relative-import resolution on purpose: packages and modules differ by one level."""
    root = _tree(tmp_path, {"__init__.py": "", "core/__init__.py": "", "core/sub/__init__.py": "", "core/sub/m.py": ""})
    modules = checker.discover(root)
    assert checker._resolve_relative("featgeom_tda.core.sub", True, 1, "m") == "featgeom_tda.core.sub.m"
    assert checker._resolve_relative("featgeom_tda.core.sub.m", False, 2, None) == "featgeom_tda.core"
    assert set(modules) == {"featgeom_tda", "featgeom_tda.core", "featgeom_tda.core.sub", "featgeom_tda.core.sub.m"}
