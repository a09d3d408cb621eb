"""Shared test fixtures: the device grid skips CUDA with the reason (build vs. no GPU)."""

import pytest
import torch

import ppt

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
