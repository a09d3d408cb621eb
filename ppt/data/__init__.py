"""Datasets, synthetic generators and transforms."""

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
from ppt.data.safe_pickle import UnsafePickleError, load_array_pickle
from ppt.data.scanobjectnn import SCANOBJECTNN_CLASSES, ScanObjectNN, scanobjectnn_file
from ppt.data.shapenet55 import ShapeNet55
from ppt.data.synthetic_objects import write_synthetic_objects

__all__ = [
    "ObjectSample", "ObjectBatch", "collate_objects", "ObjectDataset",
    "ScanObjectNN", "SCANOBJECTNN_CLASSES", "scanobjectnn_file",
    "ModelNet40", "ModelNetFewShot", "MODELNET40_CLASSES", "ShapeNet55",
    "load_array_pickle", "UnsafePickleError",
    "normalize_unit_sphere", "NormalizeUnitSphere", "FarthestPointSubsample", "RandomFarthestPointSubsample",
    "RandomSubsample", "ShufflePoints", "ScaleAndTranslate", "Compose",
    "write_synthetic_objects",
]
