"""Reading the pickles that Point-MAE / Point-BERT ship (ModelNet40 caches, few-shot folds) without
running code from them.

``pickle.load`` calls whatever global a file names, so a crafted ``.dat``/``.pkl`` can run shell
commands. :func:`load_array_pickle` admits only what these files need: NumPy arrays, NumPy scalars
and plain containers (list, tuple, dict, set, str, bytes, numbers, None).
"""

from __future__ import annotations

import importlib
import pickle
from os import PathLike
from pathlib import Path
from typing import Any

__all__ = ["load_array_pickle", "UnsafePickleError"]

# (module, name) pairs a pickle of NumPy arrays refers to. NumPy 2 writes ``numpy._core``; files
# written by NumPy 1.x (all of the published data) name ``numpy.core``.
_NUMPY_CORE_GLOBALS = {("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer")}
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # protocol-2 pickles store bytes as encode(str, "latin1")
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("__builtin__", "set"),
    ("__builtin__", "frozenset"),
} | {(f"{package}.{module}", name) for package in ("numpy.core", "numpy._core") for module, name in _NUMPY_CORE_GLOBALS}


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle names a global outside the allowed set (NumPy arrays and plain containers)."""


def _resolve(module: str, name: str) -> Any:
    if module == "__builtin__":  # Python 2 pickles
        module = "builtins"
    if module.startswith(("numpy.core.", "numpy._core.")):
        # Whichever of the two this NumPy provides (numpy.core is a deprecated alias in NumPy 2).
        submodule = module.rsplit(".", 1)[1]
        for package in ("numpy._core", "numpy.core"):
            try:
                return getattr(importlib.import_module(f"{package}.{submodule}"), name)
            except (ImportError, AttributeError):
                continue
    return getattr(importlib.import_module(module), name)


class _ArrayUnpickler(pickle.Unpickler):
    def __init__(self, file, source: str) -> None:
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise UnsafePickleError(
                f"{self._source}: refusing to unpickle global '{module}.{name}'; only NumPy arrays and plain "
                "containers (list, tuple, dict, numbers, strings) are allowed in dataset pickles")
        return _resolve(module, name)


def load_array_pickle(path: str | PathLike) -> Any:
    """Unpickle ``path`` admitting only NumPy arrays/scalars and plain containers.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnsafePickleError: the file names any other global (a class, a function such as
            ``os.system``); nothing from the file is called before the check.
        pickle.UnpicklingError: the file is not a valid pickle.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pickle file {path} does not exist")
    with path.open("rb") as file:
        try:
            return _ArrayUnpickler(file, str(path)).load()
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
            raise pickle.UnpicklingError(f"{path}: not a readable pickle of arrays ({error})") from error
