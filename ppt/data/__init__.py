"""Datasets, synthetic generators, transforms and collation: one sub-package per pipeline.

- :mod:`ppt.data.scenes`: rooms (:class:`ScanNet`, :class:`ScanNet200`, :class:`S3DIS`, :class:`Structured3D` in
  Pointcept's preprocessed layout) as :class:`SceneSample` items, the scene transforms
  (:mod:`ppt.data.scenes.transforms`), :func:`collate_scenes` into a :class:`SceneBatch` whose
  :meth:`SceneBatch.sparse_tensor` feeds a sparse-conv network, and synthetic rooms
  (:mod:`ppt.data.scenes.rooms`).
- :mod:`ppt.data.objects`: :class:`ScanObjectNN`, :class:`ModelNet40`, :class:`ModelNetFewShot`
  and :class:`ShapeNet55` yield :class:`ObjectSample` items; :func:`collate_objects` stacks them
  into an :class:`ObjectBatch` of clouds ``(B, N, 3)`` and labels. :class:`ShapeNetPart` (part
  segmentation) yields :class:`PartSample` items, collated by :func:`collate_parts`.
- :mod:`ppt.data.renders` (UniPre3D, objects): :class:`ShapeNetRenders` yields
  :class:`RenderSample` items (a cloud and its views with cameras); :func:`collate_renders` stacks
  them into a :class:`RenderBatch`.
- :mod:`ppt.data.sweeps`: outdoor LiDAR sweeps (:class:`SemanticKITTI`, :class:`NuScenes`,
  :class:`Waymo`) as :class:`SceneSample` items with ``strength``, Pointcept's outdoor transforms,
  and synthetic street sweeps in each dataset's layout (``ppt data synth-sweeps``).
- :mod:`ppt.data.frames` (UniPre3D, scenes): :class:`ScanNetFrames` yields :class:`FrameSample`
  items (a grid-sampled scene with target and reference RGB-D frames); :func:`collate_frames`
  makes a :class:`FrameBatch`.

Shared at this level: :mod:`.seeded_dataset` (per-item seeding), :mod:`.safe_pickle` (unpickling
that admits arrays only), :mod:`.samplers` (multi-dataset batches), :mod:`.synthetic` (surface
primitives of the generators), :mod:`.synth_cli` and :mod:`.cli` (the ``ppt data`` command, which
registers each pipeline's ``synth-*`` declaration). Every name below is importable from
``ppt.data``; the modules of the flat layout before the sub-packages (``ppt.data.scenes.transforms``,
``ppt.data.scenes.rooms``, ...) stay importable under their old names (:data:`MOVED_MODULES`).
"""

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys

from ppt.data.frames import FrameBatch, FrameSample, ScanNetFrames, collate_frames, write_synthetic_frames
from ppt.data.objects import (MODELNET40_CLASSES, SCANOBJECTNN_CLASSES, Compose, FarthestPointSubsample, ModelNet40,
                              ModelNetFewShot, NormalizeUnitSphere, ObjectBatch, ObjectDataset, ObjectSample,
                              RandomFarthestPointSubsample, RandomSubsample, ScaleAndTranslate, ScanObjectNN,
                              ShapeNet55, ShufflePoints, collate_objects, normalize_unit_sphere, scanobjectnn_file,
                              write_synthetic_objects)
from ppt.data.objects import (SHAPENETPART_CATEGORIES, SHAPENETPART_PART_NAMES, SHAPENETPART_PARTS,
                              SHAPENETPART_SYNSETS, PartBatch, PartSample, ShapeNetPart, category_part_mask,
                              collate_parts)
from ppt.data.renders import (NormalizeWithCameras, RenderBatch, RenderSample, RotateWithCameras, ShapeNetRenders,
                              collate_renders, write_synthetic_renders)
from ppt.data.safe_pickle import UnsafePickleError, load_array_pickle
from ppt.data.samplers import PPT_RATIOS, MultiDatasetBatchSampler
from ppt.data.scenes import (IGNORE_INDEX, S3DIS, S3DIS_CLASSES, SCANNET_CLASSES, STRUCTURED3D_CLASSES,
                             ScanNet, SceneBatch, SceneDataset, SceneSample, SceneTransform, Structured3D,
                             collate_scenes, read_scene_folder)
from ppt.data.scenes.scannet200 import SCANNET200_CLASS_GROUPS, SCANNET200_CLASSES, ScanNet200
from ppt.data.sweeps import (NUSCENES_CLASSES, SEMANTIC_KITTI_CLASSES, WAYMO_CLASSES, NuScenes, SemanticKITTI,
                             SweepDataset, Waymo, write_synthetic_sweeps)

__all__ = [
    "SceneSample", "SceneBatch", "SceneDataset", "SceneTransform", "IGNORE_INDEX", "read_scene_folder",
    "collate_scenes", "ScanNet", "S3DIS", "Structured3D", "SCANNET_CLASSES", "S3DIS_CLASSES", "STRUCTURED3D_CLASSES",
    "ObjectSample", "ObjectBatch", "collate_objects", "ObjectDataset",
    "ScanObjectNN", "SCANOBJECTNN_CLASSES", "scanobjectnn_file",
    "ModelNet40", "ModelNetFewShot", "MODELNET40_CLASSES", "ShapeNet55",
    "ShapeNetPart", "PartSample", "PartBatch", "collate_parts", "category_part_mask", "SHAPENETPART_CATEGORIES",
    "SHAPENETPART_SYNSETS", "SHAPENETPART_PARTS", "SHAPENETPART_PART_NAMES",
    "load_array_pickle", "UnsafePickleError",
    "normalize_unit_sphere", "NormalizeUnitSphere", "FarthestPointSubsample", "RandomFarthestPointSubsample",
    "RandomSubsample", "ShufflePoints", "ScaleAndTranslate", "Compose",
    "write_synthetic_objects", "MultiDatasetBatchSampler", "PPT_RATIOS",
    "ShapeNetRenders", "RenderSample", "RenderBatch", "RotateWithCameras", "NormalizeWithCameras", "collate_renders",
    "write_synthetic_renders",
    "ScanNetFrames", "FrameSample", "FrameBatch", "collate_frames", "write_synthetic_frames",
    "ScanNet200", "SCANNET200_CLASSES", "SCANNET200_CLASS_GROUPS",
    "SweepDataset", "SemanticKITTI", "NuScenes", "Waymo", "SEMANTIC_KITTI_CLASSES", "NUSCENES_CLASSES", "WAYMO_CLASSES",
    "write_synthetic_sweeps",
]

MOVED_MODULES: dict[str, str] = {
    "scene": "ppt.data.scenes.sample",
    "scene_dataset": "ppt.data.scenes.dataset",
    "scannet": "ppt.data.scenes.scannet",
    "s3dis": "ppt.data.scenes.s3dis",
    "structured3d": "ppt.data.scenes.structured3d",
    "collate": "ppt.data.scenes.collate",
    "transforms": "ppt.data.scenes.transforms",
    "rooms": "ppt.data.scenes.rooms",
    "object_sample": "ppt.data.objects.sample",
    "object_dataset": "ppt.data.objects.dataset",
    "object_transforms": "ppt.data.objects.transforms",
    "scanobjectnn": "ppt.data.objects.scanobjectnn",
    "modelnet": "ppt.data.objects.modelnet",
    "shapenet55": "ppt.data.objects.shapenet55",
    "synthetic_objects": "ppt.data.objects.synthetic",
    "synthetic_layouts": "ppt.data.objects.synthetic_layouts",
    "objects_cli": "ppt.data.objects.cli",
    "shapenet_renders": "ppt.data.renders.shapenet_renders",
    "synthetic_renders": "ppt.data.renders.synthetic",
    "renders_cli": "ppt.data.renders.cli",
    "scannet_frames": "ppt.data.frames.scannet_frames",
    "synthetic_frames": "ppt.data.frames.synthetic",
    "frames_cli": "ppt.data.frames.cli",
}
"""Module of the flat layout (``ppt.data.<name>``) -> the module that holds its code now."""


def _moved_name(fullname: str) -> str | None:
    """The module ``fullname`` is now (``ppt.data.rooms.flavors`` -> ``ppt.data.scenes.rooms.flavors``),
    or None when it did not move."""
    old, dot, rest = fullname.removeprefix(f"{__name__}.").partition(".")
    if not fullname.startswith(f"{__name__}.") or old not in MOVED_MODULES:
        return None
    return MOVED_MODULES[old] + dot + rest


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports ``ppt.data.<old name>`` (and its submodules) as the module it moved to: the same
    module object (so its classes are the same classes), imported on first use, with its own
    ``__spec__`` kept. It goes first on ``sys.meta_path``: the path finder would otherwise load a
    moved package's submodule a second time, under the old name."""

    def __init__(self) -> None:
        self._specs: dict[str, importlib.machinery.ModuleSpec] = {}

    def find_spec(self, fullname, path, target=None):
        return None if _moved_name(fullname) is None else importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        module = importlib.import_module(_moved_name(spec.name))
        self._specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module):
        # the moved module ran when create_module imported it; the import system has since set its
        # __spec__ to the alias's, which would misname it (and lose a package's search locations)
        module.__spec__ = self._specs.pop(module.__spec__.name)


sys.meta_path.insert(0, _MovedModuleFinder())
