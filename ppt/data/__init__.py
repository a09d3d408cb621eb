"""Datasets, synthetic generators, transforms and collation.

Scene pipeline: a dataset (:class:`ScanNet`, :class:`S3DIS`, :class:`Structured3D`, all in
Pointcept's preprocessed layout) yields :class:`SceneSample` items, transforms from
:mod:`ppt.data.transforms` map them, :func:`collate_scenes` concatenates them into a
:class:`SceneBatch` whose :meth:`SceneBatch.sparse_tensor` feeds a sparse-conv network.

Object pipeline: :class:`ScanObjectNN`, :class:`ModelNet40`, :class:`ModelNetFewShot` and
:class:`ShapeNet55` yield :class:`ObjectSample` items; :func:`collate_objects` stacks them into an
:class:`ObjectBatch` of clouds ``(B, N, 3)`` and labels.

Render pipeline (UniPre3D): :class:`ShapeNetRenders` yields :class:`RenderSample` items (a cloud and
its views with cameras); :func:`collate_renders` stacks them into a :class:`RenderBatch`. At scene
level :class:`ScanNetFrames` yields :class:`FrameSample` items (a grid-sampled scene with target and
reference RGB-D frames); :func:`collate_frames` makes a :class:`FrameBatch`.
"""

from ppt.data.collate import SceneBatch, collate_scenes
from ppt.data.modelnet import MODELNET40_CLASSES, ModelNet40, ModelNetFewShot
from ppt.data.object_dataset import ObjectDataset
from ppt.data.object_sample import ObjectBatch, ObjectSample, collate_objects
from ppt.data.object_transforms import (
    Compose,
    FarthestPointSubsample,
    NormalizeUnitSphere,
    RandomFarthestPointSubsample,
    RandomSubsample,
    ScaleAndTranslate,
    ShufflePoints,
    normalize_unit_sphere,
)
from ppt.data.s3dis import S3DIS, S3DIS_CLASSES
from ppt.data.samplers import PPT_RATIOS, MultiDatasetBatchSampler
from ppt.data.safe_pickle import UnsafePickleError, load_array_pickle
from ppt.data.scannet import SCANNET_CLASSES, ScanNet
from ppt.data.scannet_frames import FrameBatch, FrameSample, ScanNetFrames, collate_frames
from ppt.data.scanobjectnn import SCANOBJECTNN_CLASSES, ScanObjectNN, scanobjectnn_file
from ppt.data.scene import IGNORE_INDEX, SceneSample
from ppt.data.scene_dataset import SceneDataset, SceneTransform, read_scene_folder
from ppt.data.shapenet55 import ShapeNet55
from ppt.data.shapenet_renders import RenderBatch, RenderSample, RotateWithCameras, ShapeNetRenders, collate_renders
from ppt.data.structured3d import STRUCTURED3D_CLASSES, Structured3D
from ppt.data.synthetic_objects import write_synthetic_objects
from ppt.data.synthetic_frames import write_synthetic_frames
from ppt.data.synthetic_renders import write_synthetic_renders

__all__ = [
    "SceneSample", "SceneBatch", "SceneDataset", "SceneTransform", "IGNORE_INDEX", "read_scene_folder",
    "collate_scenes", "ScanNet", "S3DIS", "Structured3D", "SCANNET_CLASSES", "S3DIS_CLASSES", "STRUCTURED3D_CLASSES",
    "ObjectSample", "ObjectBatch", "collate_objects", "ObjectDataset",
    "ScanObjectNN", "SCANOBJECTNN_CLASSES", "scanobjectnn_file",
    "ModelNet40", "ModelNetFewShot", "MODELNET40_CLASSES", "ShapeNet55",
    "load_array_pickle", "UnsafePickleError",
    "normalize_unit_sphere", "NormalizeUnitSphere", "FarthestPointSubsample", "RandomFarthestPointSubsample",
    "RandomSubsample", "ShufflePoints", "ScaleAndTranslate", "Compose",
    "write_synthetic_objects", "MultiDatasetBatchSampler", "PPT_RATIOS",
    "ShapeNetRenders", "RenderSample", "RenderBatch", "RotateWithCameras", "collate_renders", "write_synthetic_renders",
    "ScanNetFrames", "FrameSample", "FrameBatch", "collate_frames", "write_synthetic_frames",
]
