"""Build metadata and the ppt command (the benchmark command is tested in tests/bench/)."""

import os
import re
import subprocess
import sys
import zipfile

import pytest
import torch

import ppt
from ppt.cli import main as cli_main

POINT_OPS = {"voxelize", "farthest_point_sample", "knn", "knn_backward"}


def test_build_info_describes_the_build():
    info = ppt.build_info()
    assert info["version"] == ppt.__version__
    assert info["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert isinstance(info["cuda"], bool) and isinstance(info["openmp"], bool)
    assert isinstance(info["emulation"], bool)
    assert info["cuda"] == bool(info["cuda_archs"])
    assert info["cpu_kernels"] in {"avx512", "avx2", "baseline"}
    assert POINT_OPS <= set(info["ops"])
    for name in info["ops"]:
        assert hasattr(torch.ops.ppt, name)


def test_ppt_info_prints_a_table(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["info"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "CUDA kernels" in out and "CUDA emulation" in out and "voxelize" in out and ppt.__version__ in out


def test_cpu_kernel_variant_can_be_capped():
    env = {**os.environ, "PPT_CPU_ISA": "baseline"}
    result = subprocess.run([sys.executable, "-m", "ppt", "info"], capture_output=True, text=True, check=True, env=env)
    assert re.search(r"CPU kernels\s+baseline", result.stdout)


def test_python_dash_m_ppt_runs():
    result = subprocess.run([sys.executable, "-m", "ppt", "info"], capture_output=True, text=True, check=True)
    assert "built against torch" in result.stdout


def test_import_under_another_torch_names_both_versions_and_the_rebuild():
    # The installed torch is replaced by another release before ppt loads (what a torch upgrade
    # after building does); ppt must stop before loading _C, whose symbols would not resolve.
    code = "import torch\ntorch.__version__ = '2.4.1+cu121'\nimport ppt"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    built = ppt.build_info()["torch"]
    assert (f"ImportError: ppt was built against torch {built}, but torch 2.4.1+cu121 is installed"
            in result.stderr), result.stderr
    assert "pip install --no-build-isolation -e ." in result.stderr
    assert result.stderr.count("Error:") == 1  # one clear message, not a chain ending in a symbol error


def test_local_version_labels_share_a_build():
    # +cpu and +cu126 builds of one torch release share the C++ ABI (as the wheel's pin assumes).
    ppt._check_torch_matches_build("2.13.0+cpu", "2.13.0+cu126")
    ppt._check_torch_matches_build("2.13.0", "2.13.0+cpu")
    with pytest.raises(ImportError, match=r"built against torch 2\.13\.0\+cpu, but torch 2\.13\.1 is installed"):
        ppt._check_torch_matches_build("2.13.0+cpu", "2.13.1")


@pytest.mark.slow
def test_wheel_requires_the_torch_it_was_built_with(ppt_wheel):
    with zipfile.ZipFile(ppt_wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        build_config = archive.read("ppt/_build_config.py").decode()
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    torch_requires = [r for r in requires if re.match(r"torch\b", r)]
    assert torch_requires == [f"torch=={torch.__version__.split('+')[0]}"], requires
    assert f'TORCH_VERSION = "{torch.__version__}"' in build_config
