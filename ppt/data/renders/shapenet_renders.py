"""Multi-view renders of objects with their point clouds, in UniPre3D's ShapeNet layout (its
``dataset/shapenet.py``; the "ShapeNet-Multiview" renders)::

    <root>/<synset>/<model id>/easy/00.png ... 23.png       128 x 128 RGB(A), black background
                               easy/00.txt ... 23.txt       4 x 4 camera-to-world, row-major, OpenCV axes
                               pts/<synset>-<model id>.npy  (P, 3+) float point cloud

An item is a :class:`RenderSample`: the cloud centred, farthest-point subsampled to ``num_points``
and turned into the cameras' frame with the official axis change ``(x, y, z) -> (-z, x, -y)``, and
``views`` views (images, world-to-camera matrices, intrinsics from the 49.134 degree field of view);
view 0 is the reference view of the 2D branch. :func:`collate_renders` stacks samples into a
:class:`RenderBatch`. Cameras follow ppt's pixel convention (docs/ops.md): a point at pixel ``(u, v)``
of view ``j`` projects there with ``viewmats[j]`` and ``Ks[j]``.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import numpy as np
import torch
from torch import Tensor

from ppt.data.seeded_dataset import SeededDataset
from ppt.ops import farthest_point_sample

__all__ = [
    "RenderSample", "RenderBatch", "collate_renders", "ShapeNetRenders", "RotateWithCameras", "NormalizeWithCameras",
    "SHAPENET_RENDER_FOV", "focal_from_fov", "intrinsics", "to_camera_frame", "from_camera_frame",
    "read_camera_to_world",
]

SHAPENET_RENDER_FOV = 49.13434264120263
"""Field of view (degrees, horizontal and vertical) of the renders (the official ``data.fov``)."""
SHAPENET_RENDER_SIZE = 128
"""Training resolution of the renders (the official ``data.training_resolution``)."""
SHAPENET_RENDER_NEAR, SHAPENET_RENDER_FAR = 0.5, 2.0
"""The official ``znear`` / ``zfar`` of the renders' projection (the rasterizer culls by neither)."""
RENDER_FOLDER = "easy"
SPLIT_FRACTIONS = {"train": 0.75, "val": 0.2}
"""The official split: a seeded shuffle of all objects, the first 75% train, the next 20% val, the rest test."""


def focal_from_fov(fov_degrees: float, pixels: int) -> float:
    """Focal length in pixels of a pinhole camera with the field of view ``fov_degrees`` over ``pixels``."""
    return pixels / (2.0 * math.tan(math.radians(fov_degrees) / 2.0))


def intrinsics(width: int, height: int, fov_degrees: float = SHAPENET_RENDER_FOV) -> Tensor:
    """``(3, 3)`` float32 intrinsics with the field of view ``fov_degrees`` in both directions and the
    principal point at the image centre (``(width / 2, height / 2)`` in ppt's pixel convention)."""
    K = torch.zeros(3, 3, dtype=torch.float32)
    K[0, 0] = focal_from_fov(fov_degrees, width)
    K[1, 1] = focal_from_fov(fov_degrees, height)
    K[0, 2], K[1, 2], K[2, 2] = width / 2.0, height / 2.0, 1.0
    return K


def to_camera_frame(points: np.ndarray) -> np.ndarray:
    """The official axis change from the stored clouds' frame to the cameras' frame:
    ``(x, y, z) -> (-z, x, -y)`` (``dataset/shapenet.py``'s ``_transform_point_data``)."""
    return np.stack([-points[:, 2], points[:, 0], -points[:, 1]], axis=1)


def from_camera_frame(points: np.ndarray) -> np.ndarray:
    """The inverse of :func:`to_camera_frame`, back to the stored clouds' frame (``y`` up for
    ShapeNet and the synthetic renders): ``(x, y, z) -> (y, -z, -x)``."""
    return np.stack([points[:, 1], -points[:, 2], -points[:, 0]], axis=1)


_FROM_CAMERA_FRAME = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]], dtype=torch.float64)
""":func:`from_camera_frame` as a rotation matrix (determinant 1)."""


def read_camera_to_world(path: Path) -> np.ndarray:
    """A 4 x 4 camera-to-world matrix stored as 16 whitespace-separated numbers (row-major)."""
    values = np.array(path.read_text().split(), dtype=np.float64)
    if values.shape != (16,) or not np.isfinite(values).all():
        raise ValueError(f"{path}: expected 16 finite numbers (a row-major 4x4 camera-to-world matrix), got "
                         f"{values.size} values")
    matrix = values.reshape(4, 4)
    if not np.allclose(matrix[3], (0.0, 0.0, 0.0, 1.0), atol=1e-6) or abs(np.linalg.det(matrix[:3, :3])) < 1e-8:
        raise ValueError(f"{path}: not a rigid camera-to-world matrix (last row {matrix[3].tolist()})")
    return matrix


@dataclass(frozen=True)
class RenderSample:
    """One object with its views.

    Attributes:
        points: ``(P, 3)`` float32, in the cameras' world frame.
        images: ``(V, H, W, 3)`` float32 in [0, 1]; view 0 is the reference view.
        viewmats: ``(V, 4, 4)`` float32 world -> camera (OpenCV axes).
        Ks: ``(V, 3, 3)`` float32 intrinsics.
        name: ``<synset>/<model id>``.
    """

    points: Tensor
    images: Tensor
    viewmats: Tensor
    Ks: Tensor
    name: str

    def __post_init__(self) -> None:
        views = self.images.shape[0] if self.images.dim() == 4 else -1
        checks = (("points", self.points, 2, (3,)), ("images", self.images, 4, (3,)),
                  ("viewmats", self.viewmats, 3, (4, 4)), ("Ks", self.Ks, 3, (3, 3)))
        for name, value, dims, tail in checks:
            if (not isinstance(value, Tensor) or value.dtype != torch.float32 or value.dim() != dims
                    or tuple(value.shape[dims - len(tail):]) != tail or (name != "points" and value.shape[0] != views)):
                shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(f"RenderSample {self.name!r}: {name} must be float32 with V = images.shape[0] "
                                 f"leading and trailing dims {tail}, got {shape}")


class RenderBatch(NamedTuple):
    """Stacked samples: ``points`` ``(B, P, 3)``, ``images`` ``(B, V, H, W, 3)``, ``viewmats``
    ``(B, V, 4, 4)``, ``Ks`` ``(B, V, 3, 3)``; unpacks in the argument order of
    :class:`ppt.models.UniPre3D`'s forward."""

    points: Tensor
    images: Tensor
    viewmats: Tensor
    Ks: Tensor

    def to(self, device: torch.device | str, non_blocking: bool = False) -> RenderBatch:
        return RenderBatch(*(t.to(device, non_blocking=non_blocking) for t in self))


def collate_renders(samples: Sequence[RenderSample]) -> RenderBatch:
    """Stack samples with equal point counts, view counts and image sizes."""
    if not samples:
        raise ValueError("collate_renders: got no samples")
    for field in ("points", "images"):
        shapes = {tuple(getattr(sample, field).shape) for sample in samples}
        if len(shapes) != 1:
            raise ValueError(f"collate_renders: samples have different {field} shapes {sorted(shapes)}")
    return RenderBatch(*(torch.stack([getattr(sample, field) for sample in samples])
                         for field in ("points", "images", "viewmats", "Ks")))


def _axis_rotation(axis: int, angle: float) -> Tensor:
    """3 x 3 rotation by ``angle`` (radians, right-handed) about coordinate axis ``axis``."""
    c, s = math.cos(angle), math.sin(angle)
    i, j = (axis + 1) % 3, (axis + 2) % 3
    rotation = torch.eye(3, dtype=torch.float64)
    rotation[i, i], rotation[i, j], rotation[j, i], rotation[j, j] = c, -s, s, c
    return rotation


class RotateWithCameras:
    """The official training augmentation (``PointCloudRotationWithExtrinsic``): a random rotation of
    the cloud about the three axes of the cameras' frame, by angles uniform in ``[-a, a]`` for
    ``angles = (a_x, a_y, a_z)`` (radians; default ``0.01 pi``, ``0.01 pi``, ``2 pi``: a small tilt and
    any turn about ``z``, the vertical of the renders), composed in random order; the cameras turn
    with it, so every point keeps its pixels."""

    def __init__(self, angles: Sequence[float] = (0.01 * math.pi, 0.01 * math.pi, 2 * math.pi)) -> None:
        if len(angles) != 3 or any(a < 0 for a in angles):
            raise ValueError(f"RotateWithCameras: angles must be 3 non-negative bounds, got {tuple(angles)}")
        self.angles = tuple(float(a) for a in angles)

    def __call__(self, sample: RenderSample, generator: torch.Generator) -> RenderSample:
        draws = (torch.rand(3, generator=generator, dtype=torch.float64) * 2 - 1).tolist()
        rotations = [_axis_rotation(axis, bound * draw) for axis, (bound, draw) in enumerate(zip(self.angles, draws))]
        order = torch.randperm(3, generator=generator).tolist()
        rotation = rotations[order[0]] @ rotations[order[1]] @ rotations[order[2]]
        inverse = torch.eye(4, dtype=torch.float64)
        inverse[:3, :3] = rotation.T
        points = (sample.points.double() @ rotation.T).float()
        viewmats = (sample.viewmats.double() @ inverse).float()
        return dataclasses.replace(sample, points=points, viewmats=viewmats)


class NormalizeWithCameras:
    """Put the cloud in the frame of ppt's object datasets, the cameras following it: centre it on its
    mean, scale it so that its farthest point lies at ``radius`` and, with ``stored_axes``, turn it
    back from the cameras' frame into the stored clouds' frame (:func:`from_camera_frame`: ``y`` up
    for ShapeNet and the synthetic renders, as the synthetic ScanObjectNN / ModelNet objects).

    The map ``p -> s R (p - c)`` is a similarity, so the cameras stay rigid: each world-to-camera
    matrix becomes ``[R_cam R^T | s (R_cam c + t_cam)]``, whose camera coordinates are the old ones
    times ``s``. Every point keeps its pixels and its depth order, and Gaussians drawn in the new frame
    (means mapped, scales times ``s``, rotations turned by ``R``) render exactly as in the old one
    (the projection divides the scale out). Apply it after :class:`RotateWithCameras`, whose
    vertical is the cameras' ``z``.
    """

    def __init__(self, radius: float = 1.0, stored_axes: bool = True) -> None:
        if not radius > 0:
            raise ValueError(f"NormalizeWithCameras: radius must be > 0, got {radius}")
        self.radius, self.stored_axes = float(radius), bool(stored_axes)

    def similarity(self, points: Tensor) -> tuple[float, Tensor, Tensor]:
        """``(s, R, c)`` of the map ``p -> s R (p - c)`` for a cloud ``(P, 3)`` (float64 ``R``, ``c``)."""
        points = points.double()
        centre = points.mean(dim=0)
        extent = float((points - centre).norm(dim=1).max()) if len(points) else 0.0
        if not extent > 0:
            raise ValueError(f"NormalizeWithCameras: the cloud's {len(points)} points coincide (or are not finite); "
                             "there is no scale to normalise")
        rotation = _FROM_CAMERA_FRAME if self.stored_axes else torch.eye(3, dtype=torch.float64)
        return self.radius / extent, rotation, centre

    def __call__(self, sample: RenderSample, generator: torch.Generator | None = None) -> RenderSample:
        scale, rotation, centre = self.similarity(sample.points)
        points = (scale * (sample.points.double() - centre) @ rotation.T).float()
        viewmats = sample.viewmats.double().clone()
        rotations, translations = viewmats[:, :3, :3], viewmats[:, :3, 3]
        viewmats[:, :3, 3] = scale * (translations + rotations @ centre)
        viewmats[:, :3, :3] = rotations @ rotation.T
        return dataclasses.replace(sample, points=points, viewmats=viewmats.float())


def read_image(path: Path, size: int | tuple[int, int]) -> np.ndarray:
    """``(H, W, 3)`` float32 colours in [0, 1] of the image at ``path``, resized bicubically to
    ``size`` (a side, or ``(width, height)``) where it differs."""
    from PIL import Image

    width, height = (size, size) if isinstance(size, int) else size
    with Image.open(path) as image:
        if image.mode not in ("RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in image.mode else "RGB")
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BICUBIC)
        # The colour channels as stored (the official loader drops alpha without compositing).
        return np.asarray(image, dtype=np.float32)[..., :3] / 255.0


class ShapeNetRenders(SeededDataset):
    """UniPre3D's object-level renders (layout in the module docstring).

    Args:
        root: folder of the synset folders (the official ``data.dataset_root``).
        split: ``"train"``, ``"val"`` or ``"test"``: the official split of the sorted objects,
            shuffled with Python's ``random.Random(split_seed + 1)`` (75% / 20% / 5%).
        views: views per item. Training draws ``views`` distinct views at random per item and epoch
            (view 0 is the reference view); ``val``/``test`` take views ``0 .. views-1`` (view 0, the
            official test input, first). ``None``: every view in order.
        num_points: points per cloud, by farthest point sampling from the first stored point (the
            official sampler) after centring the cloud on its mean.
        seed: base seed of the per-item randomness (see :class:`ppt.data.SeededDataset`).
        transform: optional ``(sample, generator) -> sample`` applied last (the official training
            augmentation is :class:`RotateWithCameras`).
        image_size: side of the square images (stored images of another size are resized bicubically).
        fov_degrees: field of view of the renders.
        split_seed: the official ``general.random_seed`` (42) that fixes the split.
    """

    def __init__(self, root: str | PathLike, split: str = "train", views: int | None = 4, num_points: int = 1024,
                 seed: int = 0, *, transform: Callable[[RenderSample, torch.Generator], RenderSample] | None = None,
                 image_size: int = SHAPENET_RENDER_SIZE, fov_degrees: float = SHAPENET_RENDER_FOV,
                 split_seed: int = 42) -> None:
        super().__init__(transform, seed)
        if split not in ("train", "val", "test"):
            raise ValueError(f"ShapeNetRenders: split must be 'train', 'val' or 'test', got {split!r}")
        if views is not None and views < 1:
            raise ValueError(f"ShapeNetRenders: views must be >= 1 or None, got {views}")
        if num_points < 1:
            raise ValueError(f"ShapeNetRenders: num_points must be >= 1, got {num_points}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"ShapeNetRenders: root {self.root} is not a folder")
        self.split, self.views, self.num_points = split, views, num_points
        self.image_size, self.fov_degrees = image_size, fov_degrees
        # As the official loader: every <synset>/<model id> folder, sorted, shuffled with a fixed seed.
        objects = sorted(f"{synset.name}/{model.name}" for synset in self.root.iterdir() if synset.is_dir()
                         for model in synset.iterdir() if model.is_dir())
        if not objects:
            raise FileNotFoundError(f"ShapeNetRenders: no <synset>/<model id> folders under {self.root}")
        random.Random(split_seed + 1).shuffle(objects)
        train_end = int(len(objects) * SPLIT_FRACTIONS["train"])
        val_end = train_end + int(len(objects) * SPLIT_FRACTIONS["val"])
        self.objects = {"train": objects[:train_end], "val": objects[train_end:val_end], "test": objects[val_end:]}[split]
        self.K = intrinsics(image_size, image_size, fov_degrees)

    def __len__(self) -> int:
        return len(self.objects)

    def view_files(self, index: int) -> list[tuple[Path, Path]]:
        """The ``(image, camera)`` files of object ``index``, in view order."""
        folder = self.root / self.objects[index] / RENDER_FOLDER
        images = sorted(folder.glob("*.png"))
        if not images:
            raise FileNotFoundError(f"ShapeNetRenders: no views in {folder} (expected {RENDER_FOLDER}/00.png ...)")
        pairs = [(image, image.with_suffix(".txt")) for image in images]
        missing = [str(camera) for _, camera in pairs if not camera.is_file()]
        if missing:
            raise FileNotFoundError(f"ShapeNetRenders: views without a camera file: {missing[:3]}")
        return pairs

    def read_points(self, index: int) -> Tensor:
        """The stored cloud of object ``index``, centred, subsampled and in the cameras' frame."""
        synset, model = self.objects[index].split("/")
        path = self.root / synset / model / "pts" / f"{synset}-{model}.npy"
        if not path.is_file():
            raise FileNotFoundError(f"ShapeNetRenders: point cloud {path} does not exist")
        cloud = np.load(path, allow_pickle=False)
        if cloud.ndim != 2 or cloud.shape[1] < 3 or cloud.dtype.kind != "f":
            raise ValueError(f"{path}: expected a float array of shape (P, 3+), got {cloud.dtype} {cloud.shape}")
        if cloud.shape[0] < self.num_points:
            raise ValueError(f"{path}: {cloud.shape[0]} points, fewer than num_points={self.num_points}")
        xyz = cloud[:, :3].astype(np.float64)
        xyz = torch.from_numpy(to_camera_frame(xyz - xyz.mean(axis=0)).astype(np.float32))
        return xyz[farthest_point_sample(xyz[None], self.num_points)[0]]

    def choose_views(self, available: int, generator: torch.Generator) -> list[int]:
        """Indices of the item's views (see ``views``)."""
        count = available if self.views is None else self.views
        if count > available:
            raise ValueError(f"ShapeNetRenders: {count} views requested, the object has {available}")
        if self.split == "train" and self.views is not None:
            return torch.randperm(available, generator=generator)[:count].tolist()
        return list(range(count))

    def load(self, index: int, generator: torch.Generator) -> RenderSample:
        files = self.view_files(index)
        chosen = [files[i] for i in self.choose_views(len(files), generator)]
        images = torch.from_numpy(np.stack([read_image(image, self.image_size) for image, _ in chosen]))
        camera_to_world = np.stack([read_camera_to_world(camera) for _, camera in chosen])
        viewmats = torch.from_numpy(np.linalg.inv(camera_to_world).astype(np.float32))
        return RenderSample(points=self.read_points(index), images=images, viewmats=viewmats,
                            Ks=self.K.expand(len(chosen), 3, 3).clone(), name=self.objects[index])

    def __getitem__(self, index: int) -> RenderSample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"ShapeNetRenders: index {index} out of range for {len(self)} objects")
        index %= len(self)
        generator = self.generator(index)
        sample = self.load(index, generator)
        return sample if self.transform is None else self.transform(sample, generator)

    def __repr__(self) -> str:
        return f"ShapeNetRenders(root={str(self.root)!r}, split={self.split!r}, objects={len(self)}, views={self.views})"
