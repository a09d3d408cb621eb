"""How to install one of ppt's optional extras (``text``, ``clip``, ``vae``, ``bench`` ...), for the
messages of the code that needs it."""

from __future__ import annotations

import importlib.metadata
import shlex

__all__ = ["install_hint"]


def _requirements(extra: str) -> list[str]:
    """The packages of ``extra`` as the installed ppt's metadata lists them (none when ppt is not installed)."""
    try:
        requires = importlib.metadata.requires("ppt") or []
    except importlib.metadata.PackageNotFoundError:
        return []
    return [requirement.split(";")[0].strip() for requirement in requires
            if f'extra == "{extra}"' in requirement.replace("'", '"')]


def install_hint(extra: str) -> str:
    """The commands that install ``extra``: from a checkout (``ppt`` builds against the installed
    torch, hence ``--no-build-isolation``), or its packages by name."""
    hint = f'pip install --no-build-isolation -e ".[{extra}]" in the ppt checkout'
    requirements = _requirements(extra)
    return hint + (f", or pip install {shlex.join(requirements)}" if requirements else "")
