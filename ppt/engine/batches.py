"""Iterating the engine's data loaders: errors of the data itself (a malformed scene array, a
missing file) come out as :class:`DataError`, one line naming the file, and loader workers leave
SIGINT/SIGTERM to the main process, which stops the run cleanly (:mod:`ppt.engine.trainer`)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Generic, TypeVar

from torch.utils.data import DataLoader

__all__ = ["DataError", "DataBatches", "ignore_stop_signals"]

Batch = TypeVar("Batch")


class DataError(ValueError):
    """The data of a run cannot be read: a dataset file is missing, unreadable or malformed."""


def _original_message(error: BaseException) -> str:
    """The message of ``error``; for one re-raised from a DataLoader worker (whose message is
    "Caught ... in DataLoader worker process N. Original Traceback ..."), the original's own message."""
    message = str(error).strip()
    if "Original Traceback" not in message:
        return message
    last = message.splitlines()[-1]
    marker = f"{type(error).__name__}: "
    return last.split(marker, 1)[1] if marker in last else last


class DataBatches(Generic[Batch]):
    """The batches of ``loader`` (iterate it once per ``with`` block); a ``ValueError`` or ``OSError``
    raised while reading one (by the datasets, the transforms or the collate function, in a worker
    or not) becomes a :class:`DataError` whose message starts with ``where``. Errors of the code
    that consumes the batches pass unchanged. Leaving the ``with`` block, however it is left, shuts
    the loader's workers down at once (a traceback would otherwise keep them alive until garbage
    collection, and they ignore the SIGTERM that would end them at exit)."""

    def __init__(self, loader: DataLoader, where: str) -> None:
        self.loader, self.where = loader, where
        self._iterator: Iterator | None = None

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> DataBatches[Batch]:
        self.close()
        self._iterator = iter(self.loader)
        return self

    def __next__(self) -> Batch:
        try:
            return next(self._iterator)
        except StopIteration:
            raise
        except (ValueError, OSError) as error:
            self.close()
            raise DataError(f"{self.where}: {_original_message(error)}") from error

    def close(self) -> None:
        # torch's multi-process iterator has no public way to stop its workers but dropping the last reference
        shutdown = getattr(self._iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        self._iterator = None

    def __enter__(self) -> DataBatches[Batch]:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def ignore_stop_signals(worker_id: int) -> None:
    """``worker_init_fn`` of the engine's DataLoaders: Ctrl-C reaches every process of the terminal's
    group (and torchrun signals each worker's whole group), so workers ignore SIGINT and SIGTERM and
    leave the main process to finish its step and shut them down (:class:`DataBatches`); they still
    exit when it dies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
