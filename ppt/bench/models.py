"""Model-step benchmarks: the speed and memory targets of the model issues live here.

Each model issue adds its cases to :func:`cases` when its model lands: the SpUNet-S train step
(ppt against the same network on spconv), the PPT step, DAPT against a full fine-tune step (time
and peak memory), and the UniPre3D object step (batched against a per-image loop). Until then the
suite has no cases and ``ppt bench models`` says so.

Run: ``ppt bench models [--quick] [--device cpu|cuda]``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ppt.bench.harness import Case

SUITE = "models"
SUPPORTED_DTYPES = ("float32", "float16", "bfloat16")
PENDING = "Its cases (model train steps against their baselines) arrive with the models."


def default_dtypes(device: torch.device) -> tuple[str, ...]:
    return ("float32",)


def cases(device: torch.device, dtype: torch.dtype, quick: bool) -> Iterator[Case]:
    from ppt.bench.ppt_step import ppt_step_cases
    from ppt.bench.unipre3d import unipre3d_cases

    yield from ppt_step_cases(device, dtype, quick)
    yield from unipre3d_cases(device, dtype, quick)
