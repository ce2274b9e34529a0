"""The service in an environment memgate could not share: its own virtual environment
with memray, memgate's heap sampler (built there by pip) and the demo's packages,
pydantic 1.x, and none of memgate's (no locust, no numpy, no scipy), selected by
``PATH`` as an activated environment would be."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import venv
from pathlib import Path

import pytest

from tests.support import DEMO_SCENARIO, REPO, memgate, one_line_error, planted_leak_line

pytestmark = pytest.mark.e2e

MEMRAY = importlib.metadata.version("memray")


@pytest.fixture(scope="module")
def service_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` folder of a fresh virtual environment with only the demo's packages,
    memray, the sampler, and pydantic 1.10 (memgate needs pydantic 2)."""
    folder = tmp_path_factory.mktemp("service") / "venv"
    venv.create(folder, with_pip=True)
    python = folder / "bin" / "python"
    installed = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"memray=={MEMRAY}",
            str(REPO / "sampler"),
            "starlette",
            "uvicorn",
            "pydantic==1.10.*",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    for absent in ("locust", "numpy", "scipy", "gate"):
        probe = subprocess.run(
            [str(python), "-c", f"import {absent}"], capture_output=True, cwd=folder
        )
        assert probe.returncode != 0, f"{absent} is installed in the service's environment"
    return folder / "bin"


def on_path(folder: Path) -> dict[str, str]:
    """The environment of a shell where ``folder``'s virtual environment is activated and
    memgate's is not on ``PATH``."""
    others = [p for p in os.environ["PATH"].split(os.pathsep) if "/.venv/" not in p + "/"]
    return {"PATH": os.pathsep.join([str(folder), *others]), "VIRTUAL_ENV": str(folder.parent)}


def test_a_service_in_its_own_environment_passes_clean_and_fails_its_leak(
    service_bin: Path, tmp_path: Path
) -> None:
    baselines, out = tmp_path / "baselines", tmp_path / "out"
    common = ["--baselines", str(baselines), "--out", str(out), "--requests", "3000"]
    clean = memgate("check", str(DEMO_SCENARIO), *common, env=on_path(service_bin))
    assert clean.returncode == 0, clean.stderr
    result = json.loads((out / "demo" / "result.json").read_text())
    assert result["analysis"]["shape"] != "leak"
    assert result["provenance"]["memray"] == MEMRAY

    leak = memgate(
        "check",
        str(DEMO_SCENARIO),
        *common,
        "--env",
        "DEMO_LEAK_BYTES=256",
        env=on_path(service_bin),
    )
    assert leak.returncode == 1, leak.stderr
    result = json.loads((out / "demo" / "result.json").read_text())
    top = result["sites"][0]["user_frame"]
    assert (top["file"], top["line"]) == ("examples/demo_service/app.py", planted_leak_line())
    # The service's own site-packages are a library, not the user's code.
    assert all(
        "site-packages" not in (site["user_frame"] or {}).get("file", "")
        for site in result["sites"]
    )


def test_a_python_without_memray_is_refused_before_anything_starts(tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    venv.create(bare, with_pip=False)
    out = tmp_path / "out"
    done = memgate("run", str(DEMO_SCENARIO), "--out", str(out), env=on_path(bare / "bin"))
    assert done.returncode == 2
    python = bare / "bin" / "python"
    assert one_line_error(done) == (
        f"memgate: error: service: {python} cannot import memray (ModuleNotFoundError:"
        f" No module named 'memray'): run {python} -m pip install memray=={MEMRAY}"
    )
    assert not (out / "service.log").exists()
