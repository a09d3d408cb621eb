"""`ppt bench` from a wheel installed outside the source checkout (the suites ship in the package).

Slow-ish: it packs a wheel (the session's ``ppt_wheel``) and runs a quick suite from a fresh virtual
environment. Deselect with ``-m "not slow"``.
"""

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest


@pytest.mark.slow
def test_installed_wheel_runs_ppt_bench(tmp_path, ppt_wheel):
    wheel = ppt_wheel
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = archive.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert "ppt/bench/sparse_conv.py" in names and "ppt/bench/models.py" in names
    assert "ppt = ppt.cli:main" in entry_points

    # A fresh environment outside the checkout: the wheel in its own site-packages, torch and the
    # other dependencies reached through a .pth line to this interpreter's site-packages (a .pth
    # line adds the folder only, so an editable install of ppt there is not picked up).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "outer_dependencies.pth").write_text("\n".join(deps) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site),
                    str(wheel)], check=True)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([str(python), "-c", "import ppt; print(ppt.__file__)"], cwd=elsewhere, env=env,
                           check=True, capture_output=True, text=True).stdout.strip()
    assert Path(where).is_relative_to(venv), where
    run = subprocess.run([str(python), "-m", "ppt", "bench", "point_ops", "--quick", "--device", "cpu"],
                         cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "voxelize" in run.stdout and "speedup" in run.stdout
    results = elsewhere / "ppt-bench-results"
    payload = json.loads((results / "results.json").read_text())
    # every case of the suite ran and passed its correctness gate from the installed wheel
    assert payload["results"] and all(r["status"] == "ok" for r in payload["results"]), payload["results"]
    assert any(r["case"].startswith("serialization_encode") for r in payload["results"])
    assert (results / "point_ops.png").is_file()
    assert not list(site.rglob("results.json"))
