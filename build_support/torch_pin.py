"""Build-time metadata provider: a ppt wheel requires the torch it was compiled against.

ppt._C links against libtorch's C++ symbols, which change between torch releases, so a wheel only
loads with the torch version installed when it was built. This provider (scikit-build-core's
``[[tool.dynamic-metadata]]`` protocol) returns the ``dependencies`` of pyproject.toml's
``requires`` setting plus ``torch==<that version>``. The local label (``+cpu``, ``+cu126``) is left
out: under PEP 440 ``==2.13.0`` matches every local build of 2.13.0, and those share the C++ ABI
(a CUDA build of ppt additionally needs a CUDA torch, which ``import ppt`` reports). An sdist is
built anew against the torch present where it is installed, so it only requires ``torch>=2.4``.
"""

from __future__ import annotations

from importlib import metadata

SDIST_TORCH = "torch>=2.4"
_state = {"build": "wheel"}


def build_state(state: str) -> None:
    """Told by scikit-build-core which artefact the metadata is for (sdist, wheel, editable, ...)."""
    _state["build"] = state


def torch_requirement() -> str:
    """``torch==X.Y.Z`` for the torch of the building Python (build with --no-build-isolation)."""
    if _state["build"] == "sdist":
        return SDIST_TORCH
    try:
        version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        raise RuntimeError(
            "ppt is compiled against the installed torch, but the Python building it has no torch. "
            "Install torch first (CPU-only machines: pip install torch==2.13.0), then build without "
            "build isolation: pip install --no-build-isolation -e ."
        ) from None
    return f"torch=={version.split('+')[0]}"


def dynamic_metadata(settings, project) -> dict:
    requires = settings.get("requires", [])
    if any(requirement.split("[")[0].strip().lower().startswith("torch") for requirement in requires):
        raise ValueError("torch_pin: list every dependency but torch in 'requires'; the provider adds torch")
    return {"dependencies": [*requires, torch_requirement()]}


def dynamic_wheel(settings) -> dict:
    """The sdist's torch requirement differs from its wheels' (PKG-INFO marks it Dynamic)."""
    return {"dependencies": True}
