"""``SparseModule`` and ``SparseSequential``: spconv's container semantics for sparse networks.

A :class:`SparseModule` receives the :class:`~ppt.sparse.SparseTensor` itself inside a
:class:`SparseSequential`; any other module (``nn.BatchNorm1d``, ``nn.ReLU``, ``nn.Identity`` ...)
receives the tensor's ``features`` and its result replaces them. A list or tuple (as Pointcept's
blocks pass ``[x, condition, context]``) is handed unchanged to every module.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ppt.sparse.tensor import SparseTensor

__all__ = ["SparseModule", "SparseSequential"]


class SparseModule(nn.Module):
    """Base class of modules that take a whole ``SparseTensor`` in a :class:`SparseSequential`
    (every sparse convolution and pooling layer of :mod:`ppt.nn`; subclass it for your own blocks)."""


class SparseSequential(SparseModule):
    """Runs its modules in order, like ``nn.Sequential`` with spconv's routing rule.

    Modules are given as positional arguments, one ``OrderedDict``, or keyword arguments (names).
    On an empty tensor (no sites) non-sparse modules are skipped, as in spconv, because layers such
    as ``nn.BatchNorm1d`` reject zero rows.
    """

    def __init__(self, *args: nn.Module, **kwargs: nn.Module) -> None:
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, module in args[0].items():
                self.add_module(name, module)
        else:
            for index, module in enumerate(args):
                self.add_module(str(index), module)
        for name, module in kwargs.items():
            if name in self._modules:
                raise ValueError(f"SparseSequential: module name {name!r} is given twice")
            self.add_module(name, module)

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, index: int) -> nn.Module:
        modules = list(self._modules.values())
        if not -len(modules) <= index < len(modules):
            raise IndexError(f"SparseSequential index {index} is out of range for {len(modules)} modules")
        return modules[index]

    def add(self, module: nn.Module, name: str | None = None) -> None:
        """Appends ``module`` under ``name`` (default: its position)."""
        name = str(len(self._modules)) if name is None else name
        if name in self._modules:
            raise KeyError(f"SparseSequential: a module named {name!r} exists already")
        self.add_module(name, module)

    def forward(self, input):
        for module in self._modules.values():
            if isinstance(module, SparseModule) or not isinstance(input, SparseTensor):
                input = module(input)
            elif input.indices.shape[0] != 0:
                input = input.replace_feature(module(input.features))
        return input
