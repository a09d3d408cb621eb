"""Shared test fixtures: the device grid (cpu, cuda, emulated) skips CUDA with the reason (build vs.
no GPU); ``emulated`` runs the CUDA glue and kernels on CPU tensors (ppt.testing.emulated_cuda)."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ppt
from ppt import testing

REPO = Path(__file__).resolve().parents[1]

_BUILD = ppt.build_info()


def _cuda_param():
    if not _BUILD["cuda"]:
        reason = "ppt was built without CUDA kernels (PPT_CUDA=OFF or no nvcc/CUDA torch at build time)"
        return pytest.param("cuda", marks=pytest.mark.skip(reason=reason))
    if not torch.cuda.is_available():
        return pytest.param("cuda", marks=pytest.mark.skip(reason="CUDA kernels built, but no GPU is visible"))
    return pytest.param("cuda")


def _emulated_param():
    if not testing.emulation_available():
        reason = "ppt was built without the CUDA emulation module (PPT_EMULATION=ON builds it)"
        return pytest.param("emulated", marks=pytest.mark.skip(reason=reason))
    return pytest.param("emulated")


DEVICES = ["cpu", _cuda_param(), _emulated_param()]


@pytest.fixture(params=DEVICES)
def device(request):
    """The device a test's tensors live on; ``emulated`` gives CPU tensors whose ppt ops run the CUDA
    implementation for the duration of the test."""
    if request.param != "emulated":
        yield torch.device(request.param)
        return
    with testing.emulated_cuda():
        yield torch.device("cpu")


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


def pytest_addoption(parser):
    parser.addoption("--emulation-coverage", dest="emulation_coverage", action="store_true", default=None,
                     help="check that the emulated tests launched every CUDA kernel (default: when the whole "
                     "tests/ folder is collected)")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    """The kernel-coverage test runs after every other test; it checks when the session collected the
    whole tests/ folder (a run of a few files cannot have launched every kernel)."""
    coverage = [item for item in items if item.name == "test_every_cuda_kernel_launched_emulated"]
    for item in coverage:
        items.remove(item)
        items.append(item)
    if config.getoption("emulation_coverage") is None:
        whole_folder = any(Path(str(arg).split("::")[0]).resolve() == REPO / "tests" for arg in config.args)
        config.option.emulation_coverage = whole_folder and bool(coverage)
