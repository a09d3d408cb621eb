"""The task registry: a recipe's ``task`` name -> the family that turns its data into batches and a
batch into a loss or predictions.

Every family is a module of this package built on :class:`~ppt.engine.tasks.base.Task`:
``segmentation`` (:mod:`.segmentation`), ``classification`` (:mod:`.classification`),
``ppt-segmentation`` (:mod:`.prompt_segmentation`), ``pretraining`` (:mod:`.pretraining`),
``unipre3d`` (:mod:`.unipre3d`) and ``part-segmentation`` (:mod:`.part_segmentation`). The registry names them and imports none: a family is imported
when a recipe asks for it, so a recipe pulls in only its own family (the ``unipre3d`` one brings the
renderer and the image encoders), and the families depend on the base, never the reverse. A new
family is a module here plus its line in :data:`TASK_FAMILIES`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ppt.engine.config import RecipeConfig
    from ppt.engine.tasks.base import Task

__all__ = ["TASK_FAMILIES", "task_class", "create_task", "Task", "SegmentationTask", "ClassificationTask"]

TASK_FAMILIES: dict[str, str] = {
    "segmentation": "ppt.engine.tasks.segmentation:SegmentationTask",
    "classification": "ppt.engine.tasks.classification:ClassificationTask",
    "ppt-segmentation": "ppt.engine.tasks.prompt_segmentation:PromptSegmentationTask",
    "pretraining": "ppt.engine.tasks.pretraining:PretrainingTask",
    "unipre3d": "ppt.engine.tasks.unipre3d:UniPre3DTask",
    "part-segmentation": "ppt.engine.tasks.part_segmentation:PartSegmentationTask",
}
"""Task name -> ``module:class`` of its family."""


def _import(target: str) -> type:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def task_class(name: str) -> type[Task]:
    """The family class of the task ``name`` (imported on first use)."""
    if name not in TASK_FAMILIES:
        raise ValueError(f"task must be one of {tuple(TASK_FAMILIES)}, got {name!r}")
    return _import(TASK_FAMILIES[name])


def create_task(config: RecipeConfig) -> Task:
    """The task family of ``config.task``, set up for the recipe ``config``."""
    return task_class(config.task)(config)


def __getattr__(name: str) -> type:
    # `from ppt.engine.tasks import Task, SegmentationTask, ...` keeps working without this module
    # importing a family up front: the base and each family class resolve on first access
    if name == "Task":
        return _import("ppt.engine.tasks.base:Task")
    for target in TASK_FAMILIES.values():
        if target.endswith(f":{name}"):
            return _import(target)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
