"""Point Prompt Training in the engine: the task ``ppt-segmentation`` (model ``ppt``).

Scene segmentation over several datasets with one :class:`~ppt.models.PointPromptTraining`: every
batch passes its condition to the model (the dataset's name for a single-dataset batch, an
``(N,)`` condition id per point for a mixed one, ``data.mixed_batches``) and the loss
(``train.loss``: cross-entropy, plus Pointcept's Lovász term in the outdoor recipe;
:mod:`ppt.engine.losses`) runs over each point's own dataset classes. Validation runs per dataset
(the engine's per-source metrics). The model's conditions default to the sources' datasets;
``model.ppt.conditions`` keeps those of a joint model when fine-tuning it on one of them.
"""

from __future__ import annotations

from torch import Tensor, nn

from ppt.data import SceneBatch
from ppt.engine.builders import SCENE_DATASETS, SWEEP_DATASETS, cache_root, load_configured_weights
from ppt.engine.config import RecipeConfig
from ppt.engine.losses import SegmentationLoss
from ppt.engine.tasks.segmentation import SegmentationTask

__all__ = ["PromptSegmentationTask", "CONDITION_DATASETS"]

CONDITION_DATASETS = {dataset.condition: dataset for dataset in (*SCENE_DATASETS.values(), *SWEEP_DATASETS.values())}
"""Condition name (``ScanNet``, ``S3DIS``, ``Structured3D``; ``SemanticKITTI``, ``nuScenes``,
``Waymo``) -> dataset class."""


class PromptSegmentationTask(SegmentationTask):
    """Multi-dataset segmentation with Point Prompt Training (recipes ``single-*``,
    ``naive-joint``, ``ppt-joint``, ``ppt-finetune-*``)."""

    find_unused_parameters = True  # a single-dataset step leaves the other datasets' norms without gradient

    def __init__(self, config: RecipeConfig) -> None:
        super().__init__(config)  # builds the criterion (build_criterion below)
        if config.model.name != "ppt":
            raise ValueError(f"task 'ppt-segmentation' trains model.name=ppt, got {config.model.name!r}")
        source_conditions = [self.dataset_class(source).condition for source in config.data.sources.values()]
        if len(set(source_conditions)) != len(source_conditions):
            raise ValueError(f"task 'ppt-segmentation': each data source must be another dataset, got {source_conditions}")
        if config.train.label_smoothing:
            raise ValueError("task 'ppt-segmentation': the restricted loss has no label smoothing; set "
                             "train.label_smoothing=0")
        self.conditions = tuple(config.model.ppt.conditions) or tuple(source_conditions)
        unknown = sorted(set(self.conditions) - set(CONDITION_DATASETS))
        missing = sorted(set(source_conditions) - set(self.conditions))
        if unknown or missing:
            raise ValueError(f"model.ppt.conditions {list(self.conditions)} must be datasets of "
                             f"{sorted(CONDITION_DATASETS)} and include every source's ({source_conditions})")

    def build_criterion(self) -> SegmentationLoss:
        """``train.loss`` over each point's own dataset classes; class weights only for a single
        source, whose classes are then the logits' columns."""
        classes = len(next(iter(self.class_names.values()))) if len(self.class_names) == 1 else None
        return SegmentationLoss(self.config.train.loss, classes, label_smoothing=self.config.train.label_smoothing)

    def build_model(self) -> nn.Module:
        from ppt.models import PointPromptTraining
        from ppt.text import embed_class_names

        model_cfg, ppt_cfg = self.config.model, self.config.model.ppt
        # the head's names: the datasets' class names, or the descriptions Pointcept's outdoor PPT
        # configs give the language-guided head (SweepDataset.prompt_names)
        class_names = {c: tuple(getattr(CONDITION_DATASETS[c], "prompt_names", CONDITION_DATASETS[c].class_names))
                       for c in self.conditions}
        text = None
        if ppt_cfg.head == "lang":
            union = tuple(dict.fromkeys(name for names in class_names.values() for name in names))
            text = embed_class_names(union, ppt_cfg.text, model=ppt_cfg.text_model, template=ppt_cfg.text_template,
                                     cache_dir=cache_root(self.config.data) / "text")
        model = PointPromptTraining(
            conditions=self.conditions, class_names=class_names, in_channels=self.in_channels, head=ppt_cfg.head,
            adapter=ppt_cfg.adapter, text=text, context_channels=ppt_cfg.context_channels,
            zero_init=ppt_cfg.zero_init, prompt_lr_scale=ppt_cfg.prompt_lr_scale, prompt_tokens=ppt_cfg.prompt_tokens,
            base_channels=model_cfg.base_channels, channels=tuple(model_cfg.channels), layers=tuple(model_cfg.layers),
            backbone=ppt_cfg.backbone, backbone_kwargs=self._ptv3_arguments() if ppt_cfg.backbone == "ptv3" else None)
        return load_configured_weights(model, model_cfg)

    def _ptv3_arguments(self) -> dict:
        """``model.ptv3`` without the PDNorm switches, which follow ``model.ppt.adapter``."""
        from ppt.engine.builders import ptv3_arguments

        arguments = ptv3_arguments(self.config.model)
        del arguments["pdnorm_bn"], arguments["pdnorm_ln"]
        return arguments

    def condition(self, batch: SceneBatch) -> str | Tensor:
        """The batch's dataset, or a condition id per point when the batch mixes datasets."""
        if len(set(batch.conditions)) == 1:
            return batch.conditions[0]
        return batch.condition_index(self.conditions)

    def forward(self, model: nn.Module, batch: SceneBatch) -> Tensor:
        return model(batch.sparse_tensor(), self.condition(batch))

    def loss(self, model: nn.Module, batch: SceneBatch) -> Tensor:
        condition = self.condition(batch)
        logits = model(batch.sparse_tensor(), condition).float()
        if not isinstance(condition, Tensor):  # one dataset: the logits are its classes
            return self.criterion(logits, batch.labelled_segment, scene=batch.batch)
        # a mixed batch: column k is class k of each point's dataset (DDP wraps the model)
        allowed = getattr(model, "module", model).column_valid[condition]
        return self.criterion(logits, batch.labelled_segment, allowed=allowed, label_space=condition,
                              scene=batch.batch)

    def checkpoint_metadata(self, model: nn.Module) -> dict:
        """The conditions, class lists, head, adapter and the text table's provenance."""
        return {"ppt_model": model.checkpoint_metadata()}
