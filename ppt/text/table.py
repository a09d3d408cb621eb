"""Class-name embedding tables: what a text provider returns, how it is saved, and its disk cache.

A :class:`TextTable` is an L2-normalised ``(classes, dim)`` float32 tensor, the class names of its
rows and a JSON-able provenance (provider, model, template, versions). Tables are saved as
safetensors files holding ``embeddings`` plus the names and provenance in the file's metadata;
the same format is the disk cache and the input of the ``file`` provider.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import torch
from torch import Tensor

from ppt._cache import CACHE_ENV, default_cache_root

__all__ = ["TextTable", "save_table", "load_table", "default_cache_dir", "cache_path", "CACHE_ENV"]



@dataclass(frozen=True)
class TextTable:
    """An L2-normalised ``(len(names), dim)`` embedding table of class names.

    Attributes:
        embeddings: ``(K, D)`` float32, unit rows.
        names: the class name of every row.
        provenance: how the table was made: ``provider``, ``model``, ``template`` and versions.
    """

    embeddings: Tensor
    names: tuple[str, ...]
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.embeddings.dim() != 2 or self.embeddings.shape[0] != len(self.names):
            raise ValueError(f"TextTable: embeddings must have shape ({len(self.names)}, D) for {len(self.names)} "
                             f"names, got {tuple(self.embeddings.shape)}")
        if not self.embeddings.is_floating_point() or not bool(torch.isfinite(self.embeddings).all()):
            raise ValueError("TextTable: embeddings must be finite floating-point values")

    @property
    def dim(self) -> int:
        return self.embeddings.shape[1]

    def select(self, names: Sequence[str]) -> TextTable:
        """The rows of ``names``, in that order."""
        missing = [name for name in names if name not in self.names]
        if missing:
            raise KeyError(f"TextTable: no embedding for {missing[0]!r}; the table has {list(self.names)}")
        rows = torch.tensor([self.names.index(name) for name in names], dtype=torch.long)
        return TextTable(self.embeddings[rows], tuple(names), dict(self.provenance))


def normalized(embeddings: Tensor) -> Tensor:
    """Rows scaled to unit L2 norm (float32); zero rows are refused, they have no direction.
    Unit rows are kept bit for bit, so a saved table reads back exactly."""
    embeddings = embeddings.detach().to(torch.float32).cpu()
    norms = embeddings.norm(dim=1, keepdim=True)
    if bool((norms == 0).any()):
        raise ValueError("text embeddings: a class name embedded to the zero vector")
    if torch.allclose(norms, torch.ones_like(norms), rtol=0, atol=1e-6):
        return embeddings
    return embeddings / norms


def save_table(path: str | PathLike, table: TextTable) -> Path:
    """Write ``table`` as safetensors (``embeddings``; names and provenance as JSON metadata)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"names": json.dumps(list(table.names)), "provenance": json.dumps(table.provenance, sort_keys=True)}
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # no half-written file under the final name
    save_file({"embeddings": table.embeddings.contiguous()}, str(temporary), metadata=metadata)
    temporary.replace(path)
    return path


def load_table(path: str | PathLike) -> TextTable:
    """Read a table written by :func:`save_table` (or any safetensors file with a 2-D
    ``embeddings`` tensor and a JSON list ``names`` in its metadata)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"text table {path} does not exist")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            if "embeddings" not in handle.keys():
                raise ValueError(f"{path}: no 'embeddings' tensor (holds {list(handle.keys())})")
            embeddings = handle.get_tensor("embeddings")
    except ValueError:
        raise
    except Exception as error:  # safetensors raises its own error type for corrupt files
        raise ValueError(f"{path}: not a readable safetensors file ({error})") from error
    if "names" not in metadata:
        raise ValueError(f"{path}: the metadata has no 'names' (the class name of each row); write tables with "
                         "ppt.text.save_table or `ppt text-embed`")
    names = json.loads(metadata["names"])
    provenance = json.loads(metadata.get("provenance", "{}"))
    return TextTable(normalized(embeddings), tuple(names), provenance)


def default_cache_dir() -> Path:
    """The ``text`` folder of ppt's cache root: ``$PPT_CACHE/text``, else ``$XDG_CACHE_HOME/ppt/text``,
    else ``~/.cache/ppt/text``."""
    return default_cache_root() / "text"


def cache_path(provider: str, model: str, template: str, names: Sequence[str], cache_dir: str | PathLike | None = None) -> Path:
    """Where the table of (provider, model, template, names) is cached: the key is a SHA-256 of
    those four, so any change (a name, its order, the template) makes a new entry."""
    key = json.dumps({"provider": provider, "model": model, "template": template, "names": list(names)},
                     sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / f"{provider}-{digest}.safetensors"
