"""Scene pipeline: rooms as coloured point clouds with per-point labels.

A dataset (:class:`ScanNet`, :class:`ScanNet200`, :class:`S3DIS`, :class:`Structured3D`, all in Pointcept's preprocessed
layout; :mod:`.dataset` is their shared reader) yields :class:`SceneSample` items (:mod:`.sample`),
transforms from :mod:`.transforms` map them, :func:`collate_scenes` (:mod:`.collate`) concatenates
them into a :class:`SceneBatch` whose :meth:`SceneBatch.sparse_tensor` feeds a sparse-conv network.
:mod:`.rooms` generates furnished synthetic rooms in each dataset's layout (``ppt data
synth-rooms``, declared in :mod:`.cli`).
"""

from ppt.data.scenes.collate import FEATURE_FIELDS, SceneBatch, collate_scenes
from ppt.data.scenes.dataset import SceneDataset, SceneTransform, read_scene_folder
from ppt.data.scenes.s3dis import S3DIS, S3DIS_AREAS, S3DIS_CLASSES
from ppt.data.scenes.sample import IGNORE_INDEX, SceneSample
from ppt.data.scenes.scannet import SCANNET_CLASSES, ScanNet
from ppt.data.scenes.scannet200 import SCANNET200_CLASS_GROUPS, SCANNET200_CLASSES, ScanNet200
from ppt.data.scenes.structured3d import STRUCTURED3D_CLASSES, Structured3D

__all__ = [
    "SceneSample", "SceneBatch", "SceneDataset", "SceneTransform", "IGNORE_INDEX", "FEATURE_FIELDS", "read_scene_folder",
    "collate_scenes", "ScanNet", "ScanNet200", "S3DIS", "Structured3D", "SCANNET_CLASSES", "S3DIS_CLASSES", "S3DIS_AREAS",
    "STRUCTURED3D_CLASSES", "SCANNET200_CLASSES", "SCANNET200_CLASS_GROUPS",
]
