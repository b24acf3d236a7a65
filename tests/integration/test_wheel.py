"""The built wheel works on its own: packaged recipes and concept groups come from the installed files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

PROBE = """
import json, sys
import featgeom_tda
from featgeom_tda.pipeline.packaged import packaged_recipe
from featgeom_tda.sources.concepts import load_concept_groups
print(json.dumps({
    "file": featgeom_tda.__file__,
    "first_path": sys.path[1],
    "recipe": str(packaged_recipe("embedded")),
    "groups": sorted(load_concept_groups()),
    "typed": (featgeom_tda.__path__[0] + "/py.typed"),
}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), "-q"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp / "dist").glob("featgeom_tda-*.whl")
    site = tmp / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(site), str(wheel), "-q"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    env = {**os.environ, "PYTHONPATH": str(site)}
    return tmp, site, env


def _run(args, tmp, env):
    return subprocess.run([sys.executable, *args], cwd=tmp, env=env, capture_output=True, text=True, timeout=60)


def test_installed_wheel_shadows_the_checkout_and_reads_its_package_data(installed):
    tmp, site, env = installed
    run = _run(["-c", PROBE], tmp, env)
    assert run.returncode == 0, run.stderr
    probe = json.loads(run.stdout)
    assert Path(probe["file"]).resolve().is_relative_to(site.resolve())
    assert Path(probe["first_path"]).resolve() == site.resolve()
    assert Path(probe["recipe"]).resolve().is_relative_to(site.resolve())
    assert {"royalty", "family", "pronouns", "months"} <= set(probe["groups"])
    assert Path(probe["typed"]).is_file()


def test_installed_cli_validates_the_packaged_recipe(installed):
    tmp, _, env = installed
    run = _run(["-m", "featgeom_tda.cli", "validate", "embedded"], tmp, env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "embedded: valid" in run.stdout
