"""ppt: C++/CUDA kernels and PyTorch modules for 3D point-cloud representation learning."""

import torch  # noqa: F401  (must come first: _C links against libtorch and registers torch.ops.ppt)

try:
    from ppt import _C
except ImportError as error:  # pragma: no cover - exercised only on broken installs
    raise ImportError(
        "ppt's compiled extension ppt._C could not be imported "
        f"({error}). Build it from the source checkout with:\n"
        "    pip install torch==2.13.0 scikit-build-core ninja   # or your CUDA torch\n"
        "    pip install --no-build-isolation -e .\n"
        "Set PPT_CUDA=ON to require CUDA kernels, PPT_CUDA=OFF to skip them. If torch was "
        "upgraded since the build, rebuild: the extension is tied to the torch it was built against."
    ) from error

from ppt import nn, ops  # noqa: E402
from ppt._build import build_info  # noqa: E402

__version__ = build_info()["version"]
__all__ = ["build_info", "nn", "ops", "__version__"]
