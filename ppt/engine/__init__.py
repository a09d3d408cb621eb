"""The training engine: one loop for every recipe (:func:`train`), task families that turn batches
into losses and predictions, optimizers and schedules, confusion-matrix metrics, checkpoints
(safetensors + JSON metadata), DDP under torchrun, and recipes loaded into typed configs."""

from ppt.engine.batches import DataError
from ppt.engine.checkpoint import CheckpointError, CheckpointMeta, read_meta, read_train_state, save_checkpoint
from ppt.engine.config import (ConfigError, DataConfig, ModelConfig, OptimConfig, ParamGroupConfig, RecipeConfig,
                               ScheduleConfig, SourceConfig, SyntheticConfig, TrainConfig, list_recipes, load_recipe)
from ppt.engine.metrics import ConfusionMatrix
from ppt.engine.optim import build_optimizer, build_scheduler, parameter_groups
from ppt.engine.tasks import create_task
from ppt.engine.tasks.base import Task
from ppt.engine.tasks.classification import ClassificationTask
from ppt.engine.tasks.segmentation import SegmentationTask
from ppt.engine.trainer import Precision, TrainingInterrupted, TrainResult, train

__all__ = [
    "train", "TrainResult", "TrainingInterrupted", "DataError", "Precision", "Task", "SegmentationTask", "ClassificationTask", "create_task",
    "RecipeConfig", "DataConfig", "SourceConfig", "SyntheticConfig", "ModelConfig", "OptimConfig", "ParamGroupConfig",
    "ScheduleConfig", "TrainConfig", "ConfigError", "load_recipe", "list_recipes",
    "ConfusionMatrix", "build_optimizer", "build_scheduler", "parameter_groups",
    "CheckpointMeta", "CheckpointError", "save_checkpoint", "read_meta", "read_train_state",
]
