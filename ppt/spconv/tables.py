"""spconv's table modules (``spconv.pytorch.tables``): branch a network and join the branches.

``ConcatTable`` runs each of its modules on the same input and returns their outputs as a list;
``AddTable`` sums and ``JoinTable`` concatenates (along channels) the features of a list of sparse
tensors on the same sites, returning one tensor that keeps the first one's sites, spatial shape
and kernel-map cache (so inverse convolutions still find their maps after the join).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ppt.nn.sparse_module import SparseModule
from ppt.sparse import SparseTensor

__all__ = ["AddTable", "ConcatTable", "JoinTable"]


def _check_same_sites(layer: str, tensors: Sequence[SparseTensor]) -> SparseTensor:
    """The first tensor, after checking that every tensor is a SparseTensor on its sites."""
    if isinstance(tensors, SparseTensor) or not isinstance(tensors, Sequence) or not tensors:
        raise TypeError(f"{layer} expects a non-empty list of SparseTensors, got {type(tensors).__name__}")
    first = tensors[0]
    for position, tensor in enumerate(tensors):
        if not isinstance(tensor, SparseTensor):
            raise TypeError(f"{layer}: input {position} is a {type(tensor).__name__}, not a SparseTensor")
        tensor.check_rows(layer)
        same = (tensor.indices is first.indices or (tensor.indices.shape == first.indices.shape
                                                    and torch.equal(tensor.indices, first.indices)))
        if not same or tensor.spatial_shape != first.spatial_shape or tensor.batch_size != first.batch_size:
            raise ValueError(f"{layer}: input {position} is on other sites than input 0 ({tensor.indices.shape[0]} "
                             f"sites, spatial_shape {tensor.spatial_shape}, batch_size {tensor.batch_size} against "
                             f"{first.indices.shape[0]}, {first.spatial_shape}, {first.batch_size}); the tables join "
                             "tensors of the same sites")
    return first


class AddTable(SparseModule):
    """The sum of the features of a list of sparse tensors on the same sites."""

    def forward(self, input: Sequence[SparseTensor]) -> SparseTensor:
        first = _check_same_sites(type(self).__name__, input)
        return first.replace_feature(sum(tensor.features for tensor in input))


class JoinTable(SparseModule):
    """The features of a list of sparse tensors on the same sites, concatenated along channels."""

    def forward(self, input: Sequence[SparseTensor]) -> SparseTensor:
        first = _check_same_sites(type(self).__name__, input)
        return first.replace_feature(torch.cat([tensor.features for tensor in input], 1))


class ConcatTable(SparseModule):
    """Runs each module on the same input; returns the list of outputs (spconv's ``ConcatTable``).
    Modules are given as positional arguments or appended with :meth:`add`."""

    def __init__(self, *modules: nn.Module) -> None:
        super().__init__()
        for module in modules:
            self.add(module)

    def add(self, module: nn.Module) -> ConcatTable:
        """Appends ``module``; returns the table (so calls chain, as in spconv)."""
        self.add_module(str(len(self._modules)), module)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def forward(self, input) -> list:
        return [module(input) for module in self._modules.values()]
