"""Object pipeline: single shapes as ``(N, 3)`` clouds with a class label.

:class:`ScanObjectNN`, :class:`ModelNet40`, :class:`ModelNetFewShot` and :class:`ShapeNet55` (each
in its official layout, on the base :class:`ObjectDataset` of :mod:`.dataset`) yield
:class:`ObjectSample` items (:mod:`.sample`); the transforms of :mod:`.transforms` subsample and
augment them; :func:`collate_objects` stacks them into an :class:`ObjectBatch`. :mod:`.synthetic`
generates labelled objects and ScanObjectNN-style scans, :mod:`.synthetic_layouts` writes them in
the ModelNet40, ShapeNet-55 and few-shot layouts (``ppt data synth-objects``, :mod:`.cli`).
Part segmentation: :class:`ShapeNetPart` (:mod:`.shapenet_part`) yields :class:`PartSample` items
(points, normals, category, per-point parts) that :func:`collate_parts` stacks into a
:class:`PartBatch`; :mod:`.synthetic_parts` writes procedural objects in its layout (``ppt data synth-parts``).
"""

from ppt.data.objects.dataset import ObjectDataset
from ppt.data.objects.modelnet import MODELNET40_CLASSES, ModelNet40, ModelNetFewShot
from ppt.data.objects.sample import ObjectBatch, ObjectSample, collate_objects
from ppt.data.objects.scanobjectnn import SCANOBJECTNN_CLASSES, ScanObjectNN, scanobjectnn_file
from ppt.data.objects.shapenet55 import ShapeNet55
from ppt.data.objects.shapenet_part import (SHAPENETPART_CATEGORIES, SHAPENETPART_PART_NAMES, SHAPENETPART_PARTS,
                                            SHAPENETPART_SYNSETS, PartBatch, PartSample, ShapeNetPart,
                                            category_part_mask, collate_parts)
from ppt.data.objects.synthetic import write_synthetic_objects
from ppt.data.objects.transforms import (Compose, FarthestPointSubsample, NormalizeUnitSphere, ObjectTransform,
                                         RandomFarthestPointSubsample, RandomSubsample, ScaleAndTranslate,
                                         ShufflePoints, normalize_unit_sphere)

__all__ = [
    "ObjectSample", "ObjectBatch", "collate_objects", "ObjectDataset", "ObjectTransform",
    "ScanObjectNN", "SCANOBJECTNN_CLASSES", "scanobjectnn_file", "ModelNet40", "ModelNetFewShot", "MODELNET40_CLASSES",
    "ShapeNet55", "normalize_unit_sphere", "NormalizeUnitSphere", "FarthestPointSubsample",
    "RandomFarthestPointSubsample", "RandomSubsample", "ShufflePoints", "ScaleAndTranslate", "Compose",
    "write_synthetic_objects", "ShapeNetPart", "PartSample", "PartBatch", "collate_parts", "category_part_mask",
    "SHAPENETPART_CATEGORIES", "SHAPENETPART_SYNSETS", "SHAPENETPART_PARTS", "SHAPENETPART_PART_NAMES",
]
