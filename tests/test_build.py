"""Build metadata and the ppt command (the benchmark command is tested in tests/bench/)."""

import os
import re
import subprocess
import sys

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
    assert "CUDA kernels" in out and "voxelize" in out and ppt.__version__ in out


def test_cpu_kernel_variant_can_be_capped():
    env = {**os.environ, "PPT_CPU_ISA": "baseline"}
    result = subprocess.run([sys.executable, "-m", "ppt", "info"], capture_output=True, text=True, check=True, env=env)
    assert re.search(r"CPU kernels\s+baseline", result.stdout)


def test_python_dash_m_ppt_runs():
    result = subprocess.run([sys.executable, "-m", "ppt", "info"], capture_output=True, text=True, check=True)
    assert "built against torch" in result.stdout
