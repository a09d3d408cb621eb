"""Sweep pipeline: outdoor LiDAR sweeps as :class:`~ppt.data.SceneSample` items with intensity
(``strength``) instead of colour.

Datasets (:mod:`.dataset` is their base): :class:`SemanticKITTI` (its release layout),
:class:`NuScenes` (lidarseg, through Pointcept's info files read by the restricted unpickler) and
:class:`Waymo` (Pointcept's preprocessed layout). :mod:`.transforms` holds Pointcept's outdoor
chains (:class:`PointClip` plus the scene transforms); the samples collate with
:func:`ppt.data.collate_scenes` (``feat_keys=("coord", "strength")``). :mod:`.street` ray-casts
procedural streets with each dataset's LiDAR and :mod:`.writers` writes them in its layout
(``ppt data synth-sweeps``, declared in :mod:`.cli`).
"""

from ppt.data.sweeps.dataset import SweepDataset
from ppt.data.sweeps.nuscenes import NUSCENES_CLASSES, NUSCENES_LEARNING_MAP, NuScenes
from ppt.data.sweeps.semantic_kitti import SEMANTIC_KITTI_CLASSES, SEMANTIC_KITTI_LEARNING_MAP, SemanticKITTI
from ppt.data.sweeps.transforms import SWEEP_FEATURES, PointClip, sweep_train_transform, sweep_val_transform
from ppt.data.sweeps.waymo import WAYMO_CLASSES, Waymo
from ppt.data.sweeps.writers import SWEEP_FLAVORS, write_synthetic_sweeps

__all__ = [
    "SweepDataset", "SemanticKITTI", "NuScenes", "Waymo", "SEMANTIC_KITTI_CLASSES", "SEMANTIC_KITTI_LEARNING_MAP",
    "NUSCENES_CLASSES", "NUSCENES_LEARNING_MAP", "WAYMO_CLASSES", "PointClip", "sweep_train_transform",
    "sweep_val_transform", "SWEEP_FEATURES", "SWEEP_FLAVORS", "write_synthetic_sweeps",
]
