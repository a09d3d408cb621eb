"""ppt: C++/CUDA kernels and PyTorch modules for 3D point-cloud representation learning."""

import torch  # (must come first: _C links against libtorch and registers torch.ops.ppt)

_BUILD_HINT = (
    "Build it from the source checkout with:\n"
    "    pip install torch==2.13.0 scikit-build-core ninja   # or your CUDA torch\n"
    "    pip install --no-build-isolation -e .\n"
    "Set PPT_CUDA=ON to require CUDA kernels, PPT_CUDA=OFF to skip them."
)

try:
    from ppt._build_config import TORCH_VERSION as _BUILT_TORCH
except ImportError as error:  # pragma: no cover - exercised only on broken installs
    raise ImportError(
        f"ppt's compiled extension is not built, or its build is incomplete ({error}). {_BUILD_HINT}"
    ) from error


def _check_torch_matches_build(built: str, running: str) -> None:
    """ppt._C only loads with the torch release it was compiled against (checked before loading it)."""
    if built.split("+")[0] != running.split("+")[0]:
        raise ImportError(
            f"ppt was built against torch {built}, but torch {running} is installed; its compiled "
            "extension only loads with the torch it was built against. Rebuild ppt for this torch "
            "from the source checkout: pip install --no-build-isolation -e .  (or reinstall ppt "
            f"from a wheel built with torch {running.split('+')[0]}), or reinstall torch=={built.split('+')[0]}."
        )


_check_torch_matches_build(_BUILT_TORCH, torch.__version__)

try:
    from ppt import _C
except ImportError as error:  # pragma: no cover - exercised only on broken installs
    raise ImportError(
        f"ppt's compiled extension ppt._C (built against torch {_BUILT_TORCH}; torch {torch.__version__} "
        f"is installed) could not be imported ({error}). {_BUILD_HINT} A CUDA build of ppt needs a CUDA "
        "build of torch."
    ) from error

from ppt import nn, ops  # noqa: E402
from ppt._build import build_info  # noqa: E402

__version__ = build_info()["version"]
__all__ = ["build_info", "nn", "ops", "__version__"]
