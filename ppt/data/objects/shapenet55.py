"""ShapeNet-55 point clouds for Point-MAE pre-training, in Point-BERT's ``ShapeNet55-34`` layout::

    ShapeNet55-34/
      shapenet_pc/02691156-1a04e3eab45ca15dd86060f189eb133.npy    (8192, 3) float
      ShapeNet-55/train.txt, test.txt                              one file name per line

Each item is a random ``num_points`` of the cloud, normalised to the unit sphere (Point-MAE's
``ShapeNet`` dataset); its label is the synset's index among the synsets of both lists.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
import torch

from ppt.data.objects.dataset import ObjectDataset
from ppt.data.objects.sample import ObjectSample
from ppt.data.objects.transforms import ObjectTransform, RandomSubsample, normalize_unit_sphere

__all__ = ["ShapeNet55"]


class ShapeNet55(ObjectDataset):
    """Args:
        root: the ``ShapeNet55-34`` folder.
        split: ``"train"`` or ``"test"`` (the list ``ShapeNet-55/<split>.txt``).
        num_points: points drawn per item (Point-MAE pre-training: 1024), with the item's generator.
        transform, seed: see :class:`ppt.data.ObjectDataset` (applied after sampling and normalising).
    """

    def __init__(self, root: str | PathLike, split: str = "train", num_points: int = 1024,
                 transform: ObjectTransform | None = None, *, seed: int = 0) -> None:
        super().__init__(transform, seed=seed)
        self.root = Path(root)
        self.split = split
        self.cloud_folder = self.root / "shapenet_pc"
        lists = self.root / "ShapeNet-55"
        split_list = lists / f"{split}.txt"
        if not split_list.is_file():
            raise FileNotFoundError(f"ShapeNet55: split list {split_list} does not exist (root should be the "
                                    "ShapeNet55-34 folder holding ShapeNet-55/ and shapenet_pc/)")
        if not self.cloud_folder.is_dir():
            raise FileNotFoundError(f"ShapeNet55: cloud folder {self.cloud_folder} does not exist")
        self.files = self._read_list(split_list)
        synsets = {name.split("-", 1)[0] for name in self.files}
        for other in ("train", "test"):
            if other != split and (lists / f"{other}.txt").is_file():
                synsets |= {name.split("-", 1)[0] for name in self._read_list(lists / f"{other}.txt")}
        self.class_names = tuple(sorted(synsets))
        self._label = {synset: label for label, synset in enumerate(self.class_names)}
        self._sample = RandomSubsample(num_points)

    @staticmethod
    def _read_list(path: Path) -> list[str]:
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        malformed = [name for name in names if "-" not in name or not name.endswith(".npy")]
        if malformed:
            raise ValueError(f"{path}: expected '<synset>-<model id>.npy' lines, got {malformed[:3]}")
        return names

    def __len__(self) -> int:
        return len(self.files)

    def read_cloud(self, index: int) -> torch.Tensor:
        """The stored cloud of item ``index``, ``(P, 3)`` float32."""
        path = self.cloud_folder / self.files[index]
        if not path.is_file():
            raise FileNotFoundError(f"ShapeNet55: {path} (listed in {self.split}.txt) does not exist")
        cloud = np.load(path, allow_pickle=False)
        if cloud.ndim != 2 or cloud.shape[1] != 3 or cloud.dtype.kind != "f":
            raise ValueError(f"{path}: expected a float array of shape (P, 3), got {cloud.dtype} {cloud.shape}")
        return torch.from_numpy(cloud.astype(np.float32))

    def load(self, index: int) -> ObjectSample:
        """The whole stored cloud, normalised (no sampling)."""
        sample = self._stored(index)
        return sample.with_points(normalize_unit_sphere(sample.points))

    def draw(self, index: int, generator: torch.Generator) -> ObjectSample:
        """A random ``num_points`` of the stored cloud, normalised (Point-MAE's ShapeNet item)."""
        sample = self._sample(self._stored(index), generator)
        return sample.with_points(normalize_unit_sphere(sample.points))

    def _stored(self, index: int) -> ObjectSample:
        name = self.files[index]
        return ObjectSample(points=self.read_cloud(index), label=self._label[name.split("-", 1)[0]],
                            name=name.removesuffix(".npy"))

    def __repr__(self) -> str:
        return f"ShapeNet55(root={str(self.root)!r}, split={self.split!r}, objects={len(self)})"
