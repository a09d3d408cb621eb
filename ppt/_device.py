"""The device a command runs on, checked against this torch and this build of ppt (``ppt train``'s
``train.device``, ``ppt eval``/``predict``/``bench``'s ``--device``)."""

from __future__ import annotations

import os

import torch

__all__ = ["resolve_device"]


def resolve_device(name: str | None, setting: str = "device") -> torch.device:
    """``None`` or ``auto``: CUDA when ppt has CUDA kernels and torch sees a GPU (under torchrun this
    process's, ``LOCAL_RANK``), else CPU; otherwise ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        ValueError: a device ppt cannot run on here, in one sentence naming ``setting`` and the fix.
    """
    import ppt

    has_cuda_kernels = ppt.build_info()["cuda"]
    if name in (None, "auto"):
        if has_cuda_kernels and torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ValueError(f"{setting} {name} is not supported: ppt's kernels run on cpu or cuda")
    if device.type == "cuda":
        if not has_cuda_kernels:
            cpu_torch = f"; torch {torch.__version__} is a CPU build" if torch.version.cuda is None else ""
            raise ValueError(f"{setting} {name}, but this build of ppt has no CUDA kernels (`ppt info` shows the "
                             f"build){cpu_torch}; reinstall on a machine with nvcc and a CUDA build of torch, e.g. "
                             "PPT_CUDA=ON pip install --no-build-isolation -e .")
        if not torch.cuda.is_available():
            raise ValueError(f"{setting} {name}, but torch sees no GPU on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"{setting} {name}, but torch sees {torch.cuda.device_count()} GPU(s)")
    return device
