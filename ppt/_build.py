"""What the compiled extension was built with, and which ops it registered."""

from __future__ import annotations

import importlib.util

import torch

from ppt import _C


def registered_ops() -> list[str]:
    """Names of the ``torch.ops.ppt`` operators, sorted."""
    prefix = "ppt::"
    return sorted(
        name[len(prefix) :] for name in torch._C._dispatch_get_all_op_names() if name.startswith(prefix)
    )


def build_info() -> dict:
    """Describe this build of ``ppt._C``.

    Returns a dict with ``version``, ``torch`` (the torch version it was compiled against),
    ``torch_runtime`` (the torch imported now), ``cuda`` (whether CUDA kernels were built),
    ``cuda_archs`` (list such as ``["80-real", "90-real"]``), ``emulation`` (whether the CPU emulation of
    the CUDA kernels, ``ppt._C_emulated``, was built: ppt.testing), ``cuda_available`` (whether a GPU is
    usable now), ``openmp``, ``cpu_kernels`` (the CPU micro-kernel variant chosen for this machine:
    ``avx512``, ``avx2`` or ``baseline``, capped by ``PPT_CPU_ISA``) and ``ops`` (the registered
    operator names).
    """
    info = dict(_C.build_info())
    info["cuda_archs"] = [arch for arch in info["cuda_archs"].split(",") if arch]
    info["torch_runtime"] = torch.__version__
    info["emulation"] = importlib.util.find_spec("ppt._C_emulated") is not None
    info["cuda_available"] = bool(info["cuda"] and torch.cuda.is_available())
    info["ops"] = registered_ops()
    return info
