"""Waymo Open Dataset segmentation (22 classes) in Pointcept's preprocessed layout."""

from __future__ import annotations

from pathlib import Path

from ppt.data.scenes.dataset import _load_array, _points_by
from ppt.data.sweeps.dataset import RawSweep, SweepDataset, SweepFrame

__all__ = ["Waymo", "WAYMO_CLASSES"]

# Waymo's 3D semantic segmentation types 1..22 (TYPE_UNDEFINED = 0 is ignored), as Pointcept names
# them; Pointcept's preprocessing stores type - 1, so class k here is Waymo type k + 1.
WAYMO_CLASSES = (
    "Car", "Truck", "Bus", "Other Vehicle", "Motorcyclist", "Bicyclist", "Pedestrian", "Sign", "Traffic Light",
    "Pole", "Construction Cone", "Bicycle", "Motorcycle", "Building", "Vegetation", "Tree Trunk", "Curb", "Road",
    "Lane Marker", "Other Ground", "Walkable", "Sidewalk",
)


class Waymo(SweepDataset):
    """Waymo frames as Pointcept's ``preprocess_waymo.py`` writes them:
    ``root/{training,validation,testing}/<segment>/<timestamp>/`` holding ``coord.npy`` ``(N, 3)``
    float32 (vehicle frame, both returns of all five lidars), ``strength.npy`` ``(N, 1)``
    (``tanh`` of the intensity), ``segment.npy`` ``(N,)`` (Waymo type - 1, ``-1`` = undefined;
    absent for testing) and ``pose.npy``; an optional ``instance.npy`` is read too. ``mask.npy`` (a
    pickled object array, for re-projecting predictions to range images) is never loaded."""

    class_names = WAYMO_CLASSES
    prompt_names = (
        "car", "truck", "bus", "other vehicle", "person who rides a motorcycle", "person who rides a bicycle",
        "pedestrian", "sign", "traffic light", "pole", "construction cone", "bicycle", "motorcycle", "building",
        "vegetation", "tree trunk", "curb", "road", "lane marker", "other ground",
        "horizontal surface that can not drive", "surface when pedestrians most likely to walk on",
    )
    condition = "Waymo"
    splits = ("training", "validation", "testing")
    point_cloud_range = (-75.2, -75.2, -4.0, 75.2, 75.2, 2.0)

    def list_frames(self, split: str) -> list[SweepFrame]:
        folder = self.root / split
        if not folder.is_dir():
            present = sorted(path.name for path in self.root.iterdir() if path.is_dir())
            raise FileNotFoundError(f"Waymo: split folder {folder} does not exist (folders in {self.root}: {present})")
        return [SweepFrame(f"{frame.parent.name}_{frame.name}", frame / "coord.npy", frame / "segment.npy")
                for segment in sorted(path for path in folder.iterdir() if path.is_dir())
                for frame in sorted(path for path in segment.iterdir() if path.is_dir())]

    @classmethod
    def frame_of(cls, path: Path) -> SweepFrame:
        """A frame folder (``coord.npy``, ``strength.npy``, ``segment.npy`` when labelled), named
        ``<segment>_<timestamp>`` as in the dataset."""
        if not path.is_dir():
            raise ValueError(f"{path}: a Waymo sweep is a frame folder holding coord.npy and strength.npy "
                             "(Pointcept's preprocessed layout)")
        return SweepFrame(f"{path.parent.name}_{path.name}", path / "coord.npy", path / "segment.npy")

    @classmethod
    def recognises(cls, path) -> bool:
        path = Path(path)
        return path.is_dir() and (path / "strength.npy").is_file() and (path / "coord.npy").is_file()

    @classmethod
    def read_frame(cls, frame: SweepFrame) -> RawSweep:
        if not frame.points.is_file():
            raise FileNotFoundError(f"{frame.points}: missing (a Waymo frame folder holds coord.npy, strength.npy "
                                    "and, unless it is a testing frame, segment.npy)")
        coord = _points_by(_load_array(frame.points), frame.points, 3, "coordinates")
        strength_path = frame.points.with_name("strength.npy")
        if not strength_path.is_file():
            raise FileNotFoundError(f"{strength_path}: missing (the frame's intensity, Pointcept's strength.npy)")
        strength = _points_by(_load_array(strength_path), strength_path, None, "intensities")
        instance_path = frame.points.with_name("instance.npy")
        instance = (_points_by(_load_array(instance_path), instance_path, None, "integer labels")
                    if instance_path.is_file() else None)
        segment = (_points_by(_load_array(frame.labels), frame.labels, None, "integer labels")
                   if frame.labels is not None and frame.labels.is_file() else None)
        return RawSweep(coord, strength.reshape(-1, 1), segment, instance)
