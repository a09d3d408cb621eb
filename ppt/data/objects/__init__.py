"""Object pipeline: single shapes as ``(N, 3)`` clouds with a class label.

:class:`ScanObjectNN`, :class:`ModelNet40`, :class:`ModelNetFewShot` and :class:`ShapeNet55` (each
in its official layout, on the base :class:`ObjectDataset` of :mod:`.dataset`) yield
:class:`ObjectSample` items (:mod:`.sample`); the transforms of :mod:`.transforms` subsample and
augment them; :func:`collate_objects` stacks them into an :class:`ObjectBatch`. :mod:`.synthetic`
generates labelled objects and ScanObjectNN-style scans, :mod:`.synthetic_layouts` writes them in
the ModelNet40, ShapeNet-55 and few-shot layouts (``ppt data synth-objects``, :mod:`.cli`).
"""

from ppt.data.objects.dataset import ObjectDataset
from ppt.data.objects.modelnet import MODELNET40_CLASSES, ModelNet40, ModelNetFewShot
from ppt.data.objects.sample import ObjectBatch, ObjectSample, collate_objects
from ppt.data.objects.scanobjectnn import SCANOBJECTNN_CLASSES, ScanObjectNN, scanobjectnn_file
from ppt.data.objects.shapenet55 import ShapeNet55
from ppt.data.objects.synthetic import write_synthetic_objects
from ppt.data.objects.transforms import (Compose, FarthestPointSubsample, NormalizeUnitSphere, ObjectTransform,
                                         RandomFarthestPointSubsample, RandomSubsample, ScaleAndTranslate,
                                         ShufflePoints, normalize_unit_sphere)

__all__ = [
    "ObjectSample", "ObjectBatch", "collate_objects", "ObjectDataset", "ObjectTransform",
    "ScanObjectNN", "SCANOBJECTNN_CLASSES", "scanobjectnn_file", "ModelNet40", "ModelNetFewShot", "MODELNET40_CLASSES",
    "ShapeNet55", "normalize_unit_sphere", "NormalizeUnitSphere", "FarthestPointSubsample",
    "RandomFarthestPointSubsample", "RandomSubsample", "ShufflePoints", "ScaleAndTranslate", "Compose",
    "write_synthetic_objects",
]
