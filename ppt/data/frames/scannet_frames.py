"""ScanNet RGB-D frames paired with the Pointcept-format scene clouds: the data of UniPre3D's scene
level (``dataset/scannet.py`` of github.com/wangzy22/UniPre3D).

Layout (two roots, as the official ``pts_dataset_root`` / ``rgb_dataset_root``)::

    <root>/<split>/<scene>/coord.npy, color.npy, normal.npy, ...    (read by ppt.data.ScanNet)
    <frames_root>/color/<scene>/<n>.jpg                               colour frames
    <frames_root>/depth/<scene>/<n>.png                               uint16 depth in millimetres, 0 = none
    <frames_root>/pose/<scene>/<n>.txt                                4 x 4 camera-to-world (ScanNet's
                                                                      pose: OpenCV axes, metres)
    <frames_root>/intrinsic/<scene>/intrinsic_color.txt, intrinsic_depth.txt
                                                                      4 x 4 (or 3 x 3) pinhole matrices at
                                                                      the stored image sizes

Frames are sorted by the number in their file names; ``frames_root`` defaults to ``<root>/2D``
(the folder the official instructions name). The intrinsic files are what ScanNet's SensReader
exports; without them the official constants are used (:data:`OFFICIAL_INTRINSICS_160x120`).

Conventions (ppt's, docs/ops.md): ``viewmats`` world -> camera with OpenCV axes, pixel ``(u, v)``
centred at ``(u + 0.5, v + 0.5)``. ScanNet's intrinsics put pixel centres on integers, so the
principal point moves by half a pixel: :func:`resize_intrinsics` converts and rescales, with the
horizontal and vertical focal lengths scaled by the width and height ratios separately (the
official code renders with one field of view for both axes; docs/unipre3d.md, "Scene level").

Frame choice (official ``_select_training_frames`` with ``use_neighbor_imgs``): the frames with a
valid pose are cut into ``targets`` contiguous runs; training draws one target frame per run and,
for each, a reference frame within ``reference_distance`` positions of it (itself excluded).
Other splits take each run's middle frame and the next frame (the previous one at the end) as its
reference. Coordinates are centred on the cloud's mean and the camera positions shifted alike.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from ppt.data.renders.shapenet_renders import read_image
from ppt.data.scenes.collate import SceneBatch, collate_scenes
from ppt.data.scenes.sample import SceneSample
from ppt.data.scenes.scannet import ScanNet
from ppt.data.scenes.transforms import GridSample, NormalizeColor
from ppt.data.seeded_dataset import SeededDataset

__all__ = [
    "FrameSample", "FrameBatch", "ScanNetFrames", "collate_frames", "read_intrinsics", "resize_intrinsics",
    "read_pose", "select_frames", "FRAME_SIZE", "OFFICIAL_INTRINSICS_160x120", "DEPTH_SCALE",
]

FRAME_SIZE = (160, 120)
"""``(width, height)`` of the official scene-level frames."""
DEPTH_SCALE = 1000.0
"""Depth PNGs hold millimetres."""
OFFICIAL_INTRINSICS_160x120 = (144.46765125, 144.46765125, 79.5, 59.5)
"""``(fx, fy, cx, cy)`` the official ``LinkCreator`` hard-codes for 160 x 120 frames (ScanNet's
depth camera, 577.87 px at 640 x 480, scaled by 1/4), pixel centres on integers."""


def _frame_number(path: Path) -> int:
    match = re.search(r"\d+", path.stem)
    if match is None:
        raise ValueError(f"ScanNetFrames: frame file {path} has no number in its name")
    return int(match.group())


def read_intrinsics(path: Path) -> np.ndarray:
    """``(3, 3)`` float64 pinhole matrix from a ScanNet intrinsic file (4 x 4 or 3 x 3)."""
    matrix = np.loadtxt(path, dtype=np.float64)
    if matrix.shape not in ((4, 4), (3, 3)) or not np.isfinite(matrix).all():
        raise ValueError(f"{path}: expected a finite 4 x 4 or 3 x 3 intrinsic matrix, got shape {matrix.shape}")
    if not (matrix[0, 0] > 0 and matrix[1, 1] > 0):
        raise ValueError(f"{path}: focal lengths must be positive, got fx={matrix[0, 0]}, fy={matrix[1, 1]}")
    return matrix[:3, :3].copy()


def resize_intrinsics(K: np.ndarray | Sequence[float], stored_size: tuple[int, int], size: tuple[int, int]) -> Tensor:
    """ScanNet intrinsics of an image of ``stored_size`` ``(width, height)`` (pixel centres on
    integers) -> ``(3, 3)`` float32 intrinsics of the image resized to ``size``, in ppt's convention
    (pixel centres at ``+0.5``).

    ``K`` is a ``(3, 3)`` matrix or ``(fx, fy, cx, cy)``. The horizontal focal length and principal
    point scale with the width ratio, the vertical ones with the height ratio.
    """
    if not isinstance(K, np.ndarray) or K.shape != (3, 3):
        fx, fy, cx, cy = (float(v) for v in K)
    else:
        fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    scale_x, scale_y = size[0] / stored_size[0], size[1] / stored_size[1]
    resized = torch.zeros(3, 3, dtype=torch.float32)
    resized[0, 0], resized[1, 1] = fx * scale_x, fy * scale_y
    resized[0, 2], resized[1, 2], resized[2, 2] = (cx + 0.5) * scale_x, (cy + 0.5) * scale_y, 1.0
    return resized


def read_pose(path: Path) -> np.ndarray | None:
    """The 4 x 4 camera-to-world matrix of a ScanNet pose file, or ``None`` when it is invalid
    (ScanNet writes ``-inf`` rows for frames its tracking lost) or singular."""
    matrix = np.loadtxt(path, dtype=np.float64)
    if matrix.shape != (4, 4):
        raise ValueError(f"{path}: expected a 4 x 4 camera-to-world matrix, got shape {matrix.shape}")
    if not np.isfinite(matrix).all() or abs(np.linalg.det(matrix[:3, :3])) < 1e-6:
        return None
    return matrix


def select_frames(count: int, targets: int, reference_distance: int,
                  generator: torch.Generator | None) -> tuple[list[int], list[int]]:
    """Target and reference positions among ``count`` usable frames (module docstring); a
    ``generator`` draws them at random (training), ``None`` takes them deterministically."""
    if count < max(targets, 2):
        raise ValueError(f"select_frames: {count} frames with a valid pose, need at least {max(targets, 2)}")
    if reference_distance < 1:
        raise ValueError(f"select_frames: reference_distance must be >= 1, got {reference_distance}")
    bounds = [round(i * count / targets) for i in range(targets + 1)]
    chosen, references = [], []
    for start, end in zip(bounds[:-1], bounds[1:]):
        if generator is None:
            target = (start + end - 1) // 2
            reference = target + 1 if target + 1 < count else target - 1
        else:
            target = start + int(torch.randint(end - start, (1,), generator=generator))
            near = [i for i in range(max(0, target - reference_distance), min(count, target + reference_distance + 1))
                    if i != target]
            reference = near[int(torch.randint(len(near), (1,), generator=generator))]
        chosen.append(target)
        references.append(reference)
    return chosen, references


@dataclass(frozen=True)
class FrameSample:
    """One scene with its target and reference frames (``V`` of each), all in the cloud's frame.

    Attributes:
        points: the grid-sampled scene (colours in [0, 1]), ready for :func:`ppt.data.collate_scenes`.
        images: ``(V, H, W, 3)`` float32 target frames in [0, 1].
        viewmats: ``(V, 4, 4)`` float32 world -> camera of the targets; ``Ks``: ``(V, 3, 3)``.
        reference_images: ``(V, H, W, 3)`` float32, the 2D branch's input.
        reference_depths: ``(V, H, W)`` float32 metres (0 = no measurement).
        reference_viewmats: ``(V, 4, 4)`` world -> camera of the reference frames.
        reference_Ks: ``(V, 3, 3)`` colour intrinsics of the reference frames.
        depth_Ks: ``(V, 3, 3)`` depth intrinsics (the depth maps' camera, same pose).
        frames: ``(V,)`` and ``reference_frames``: the frame numbers used.
    """

    points: SceneSample
    images: Tensor
    viewmats: Tensor
    Ks: Tensor
    reference_images: Tensor
    reference_depths: Tensor
    reference_viewmats: Tensor
    reference_Ks: Tensor
    depth_Ks: Tensor
    frames: tuple[int, ...]
    reference_frames: tuple[int, ...]


class FrameBatch(NamedTuple):
    """Collated :class:`FrameSample` items: ``points`` a :class:`ppt.data.SceneBatch`, the rest
    stacked with a leading batch dim ``B`` (the input of :class:`ppt.models.UniPre3DScene`)."""

    points: SceneBatch
    images: Tensor
    viewmats: Tensor
    Ks: Tensor
    reference_images: Tensor
    reference_depths: Tensor
    reference_viewmats: Tensor
    reference_Ks: Tensor
    depth_Ks: Tensor

    def to(self, device: torch.device | str, non_blocking: bool = False) -> FrameBatch:
        return FrameBatch(*(field.to(device, non_blocking=non_blocking) for field in self))


_STACKED = ("images", "viewmats", "Ks", "reference_images", "reference_depths", "reference_viewmats",
            "reference_Ks", "depth_Ks")


def collate_frames(samples: Sequence[FrameSample], feat_keys: Sequence[str] = ("color", "normal")) -> FrameBatch:
    """Collate samples with equal view counts and frame sizes; ``feat_keys`` as in
    :func:`ppt.data.collate_scenes` (the official scene model reads colour and normal)."""
    if not samples:
        raise ValueError("collate_frames: got no samples")
    for field in ("images", "reference_depths"):
        shapes = {tuple(getattr(sample, field).shape) for sample in samples}
        if len(shapes) != 1:
            raise ValueError(f"collate_frames: samples have different {field} shapes {sorted(shapes)}")
    return FrameBatch(collate_scenes([sample.points for sample in samples], feat_keys),
                      *(torch.stack([getattr(sample, field) for sample in samples]) for field in _STACKED))


class _SceneFrames(NamedTuple):
    numbers: list[int]
    colors: list[Path]
    depths: list[Path]
    poses: list[np.ndarray]
    color_K: np.ndarray | tuple[float, ...]
    depth_K: np.ndarray | tuple[float, ...]
    color_size: tuple[int, int]
    depth_size: tuple[int, int]


class ScanNetFrames(SeededDataset):
    """Scenes of :class:`ppt.data.ScanNet` with their RGB-D frames (layout in the module docstring).

    Args:
        root: the Pointcept-format dataset (parent of ``train``/``val``/``test``).
        split: split name(s) of the clouds.
        frames_root: parent of ``color``/``depth``/``pose``/``intrinsic`` (default ``root/2D``).
        targets: target frames per item (official ``input_images``: 8), each with one reference frame.
        reference_distance: how far (in frames) a reference may be from its target (official 5).
        size: ``(width, height)`` the frames are resized to (official 160 x 120).
        grid_size: voxel edge of the cloud's grid sampling (official 0.02 m).
        seed: base seed of the per-item randomness (:class:`ppt.data.SeededDataset`).
        transform: optional ``(SceneSample, generator) -> SceneSample`` applied to the cloud after the
            grid sampling; it must not move the points (the cameras would no longer match), so only
            colour augmentation belongs here (the official scene recipe uses none).
        random_frames: draw the frames at random (default: for the ``train`` split only).

    Frames whose pose is invalid (``-inf``) are skipped before the frames are chosen (the official
    loader keeps them and its matrix inverse turns them into NaN cameras).
    """

    def __init__(self, root: str | PathLike, split: str | Sequence[str] = "train", *,
                 frames_root: str | PathLike | None = None, targets: int = 8, reference_distance: int = 5,
                 size: tuple[int, int] = FRAME_SIZE, grid_size: float = 0.02, seed: int = 0,
                 transform: Callable[[SceneSample, torch.Generator], SceneSample] | None = None,
                 random_frames: bool | None = None) -> None:
        super().__init__(transform, seed)
        if targets < 1:
            raise ValueError(f"ScanNetFrames: targets must be >= 1, got {targets}")
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"ScanNetFrames: size must be (width, height) >= 1, got {size}")
        self.scenes = ScanNet(root, split)
        self.frames_root = Path(frames_root) if frames_root is not None else Path(root) / "2D"
        if not (self.frames_root / "color").is_dir():
            raise FileNotFoundError(f"ScanNetFrames: {self.frames_root / 'color'} does not exist (frames_root)")
        self.targets, self.reference_distance = targets, reference_distance
        self.size = (int(size[0]), int(size[1]))
        self.random_frames = (split == "train") if random_frames is None else random_frames
        self.grid_sample = GridSample(grid_size)
        self._frames: dict[str, _SceneFrames] = {}

    def __len__(self) -> int:
        return len(self.scenes)

    def scene_frames(self, name: str) -> _SceneFrames:
        """The frame files, valid poses and intrinsics of scene ``name`` (read once, then cached)."""
        if name in self._frames:
            return self._frames[name]
        from PIL import Image

        listed = {}
        for kind, pattern in (("color", "*.jpg"), ("depth", "*.png"), ("pose", "*.txt")):
            folder = self.frames_root / kind / name
            if not folder.is_dir():
                raise FileNotFoundError(f"ScanNetFrames: {folder} does not exist")
            listed[kind] = {_frame_number(path): path for path in folder.glob(pattern)}
        numbers = sorted(set(listed["color"]) & set(listed["depth"]) & set(listed["pose"]))
        if not len(numbers) == len(listed["color"]) == len(listed["depth"]) == len(listed["pose"]):
            raise ValueError(f"ScanNetFrames: scene {name} has {len(listed['color'])} colour, {len(listed['depth'])} "
                             f"depth and {len(listed['pose'])} pose files; every frame needs all three")
        poses = [read_pose(listed["pose"][n]) for n in numbers]
        usable = [i for i, pose in enumerate(poses) if pose is not None]
        with Image.open(listed["color"][numbers[0]]) as image:
            color_size = image.size
        with Image.open(listed["depth"][numbers[0]]) as image:
            depth_size = image.size
        intrinsic_folder = self.frames_root / "intrinsic" / name
        if intrinsic_folder.is_dir():
            color_K = read_intrinsics(intrinsic_folder / "intrinsic_color.txt")
            depth_K = read_intrinsics(intrinsic_folder / "intrinsic_depth.txt")
        else:  # the official loader's constants, given at 160 x 120 for both cameras
            color_K = depth_K = OFFICIAL_INTRINSICS_160x120
            color_size = depth_size = FRAME_SIZE
        frames = _SceneFrames([numbers[i] for i in usable], [listed["color"][numbers[i]] for i in usable],
                              [listed["depth"][numbers[i]] for i in usable], [poses[i] for i in usable],
                              color_K, depth_K, color_size, depth_size)
        self._frames[name] = frames
        return frames

    def _read_depth(self, path: Path) -> np.ndarray:
        from PIL import Image

        with Image.open(path) as image:
            if image.size != self.size:  # nearest: no depth mixed across edges (as the official loader)
                image = image.resize(self.size, Image.Resampling.NEAREST)
            depth = np.asarray(image)
        if depth.ndim != 2 or depth.dtype.kind not in "ui":
            raise ValueError(f"{path}: expected a single-channel integer depth image, got {depth.dtype} {depth.shape}")
        return depth.astype(np.float32) / DEPTH_SCALE

    def __getitem__(self, index: int) -> FrameSample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"ScanNetFrames: index {index} out of range for {len(self)} scenes")
        index %= len(self)
        generator = self.generator(index)
        points = self.scenes.load(index)
        frames = self.scene_frames(points.name)
        targets, references = select_frames(len(frames.poses), self.targets, self.reference_distance,
                                            generator if self.random_frames else None)

        centre = points.coord.double().mean(0)
        points = points.replace(coord=(points.coord.double() - centre).float())
        points = self.grid_sample(NormalizeColor()(points), generator)
        if self.transform is not None:
            points = self.transform(points, generator)

        def viewmats(chosen: list[int]) -> Tensor:
            camera_to_world = np.stack([frames.poses[i] for i in chosen])
            camera_to_world[:, :3, 3] -= centre.numpy()
            return torch.from_numpy(np.linalg.inv(camera_to_world).astype(np.float32))

        def images(chosen: list[int]) -> Tensor:
            return torch.from_numpy(np.stack([read_image(frames.colors[i], self.size) for i in chosen]))

        color_K = resize_intrinsics(frames.color_K, frames.color_size, self.size).expand(self.targets, 3, 3)
        depth_K = resize_intrinsics(frames.depth_K, frames.depth_size, self.size).expand(self.targets, 3, 3)
        return FrameSample(
            points=points, images=images(targets), viewmats=viewmats(targets), Ks=color_K.clone(),
            reference_images=images(references),
            reference_depths=torch.from_numpy(np.stack([self._read_depth(frames.depths[i]) for i in references])),
            reference_viewmats=viewmats(references), reference_Ks=color_K.clone(), depth_Ks=depth_K.clone(),
            frames=tuple(frames.numbers[i] for i in targets),
            reference_frames=tuple(frames.numbers[i] for i in references))

    def __repr__(self) -> str:
        return (f"ScanNetFrames(root={str(self.scenes.root)!r}, frames_root={str(self.frames_root)!r}, "
                f"split={self.scenes.split!r}, scenes={len(self)}, targets={self.targets})")
