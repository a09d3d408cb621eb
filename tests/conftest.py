"""Shared test fixtures: the device grid skips CUDA with the reason (build vs. no GPU)."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ppt

REPO = Path(__file__).resolve().parents[1]

_BUILD = ppt.build_info()


def _cuda_param():
    if not _BUILD["cuda"]:
        reason = "ppt was built without CUDA kernels (PPT_CUDA=OFF or no nvcc/CUDA torch at build time)"
        return pytest.param("cuda", marks=pytest.mark.skip(reason=reason))
    if not torch.cuda.is_available():
        return pytest.param("cuda", marks=pytest.mark.skip(reason="CUDA kernels built, but no GPU is visible"))
    return pytest.param("cuda")


DEVICES = ["cpu", _cuda_param()]


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def single_thread():
    """One intra-op thread for tests of whole models and pipelines on tiny inputs: there, OpenMP
    thread wake-ups dominate (and on a busy machine a 2-thread batch norm of a few thousand rows
    takes ~50 ms instead of ~0.1 ms). Kernels' multi-threaded paths are tested in tests/ops."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def ppt_wheel(tmp_path_factory) -> Path:
    """A wheel of the checkout, built once per session (slow tests only). It reuses the checkout's
    CMake build folder, so after an editable install nothing recompiles."""
    if not (REPO / "pyproject.toml").is_file():
        pytest.skip("needs the source checkout to build the wheel")
    wheels = tmp_path_factory.mktemp("wheels")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps", "-w", str(wheels),
                    str(REPO)], check=True, timeout=1200)
    (wheel,) = wheels.glob("ppt-*.whl")
    return wheel
