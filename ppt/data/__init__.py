"""Datasets, synthetic scene generators, transforms and collation.

Scene pipeline: a dataset (:class:`ScanNet`, :class:`S3DIS`, :class:`Structured3D`, all in
Pointcept's preprocessed layout) yields :class:`SceneSample` items, transforms from
:mod:`ppt.data.transforms` map them, :func:`collate_scenes` concatenates them into a
:class:`SceneBatch` whose :meth:`SceneBatch.sparse_tensor` feeds a sparse-conv network.
"""

from ppt.data.collate import SceneBatch, collate_scenes
from ppt.data.s3dis import S3DIS, S3DIS_CLASSES
from ppt.data.scannet import SCANNET_CLASSES, ScanNet
from ppt.data.scene import IGNORE_INDEX, SceneSample
from ppt.data.scene_dataset import SceneDataset, SceneTransform, read_scene_folder
from ppt.data.structured3d import STRUCTURED3D_CLASSES, Structured3D

__all__ = [
    "SceneSample", "SceneBatch", "SceneDataset", "SceneTransform", "IGNORE_INDEX", "read_scene_folder",
    "collate_scenes", "ScanNet", "S3DIS", "Structured3D", "SCANNET_CLASSES", "S3DIS_CLASSES", "STRUCTURED3D_CLASSES",
]
