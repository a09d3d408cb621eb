"""collate_scenes / SceneBatch: concatenation with offsets, features, sparse input, inverse maps."""

import pytest
import torch

from ppt.data import SceneSample, collate_scenes
from ppt.data.scenes.transforms import GridFragments, GridSample


def _sample(n, name, grid=True, normal=True, offset=0.0):
    coord = torch.arange(n * 3, dtype=torch.float32).reshape(n, 3) + offset
    return SceneSample(
        coord=coord, color=torch.full((n, 3), 0.5), normal=torch.ones(n, 3) if normal else None,
        segment=torch.arange(n), instance=torch.full((n,), 7), name=name, condition="S3DIS",
        grid_coord=torch.arange(n * 3, dtype=torch.int32).reshape(n, 3) if grid else None)


def test_concatenation_offsets_and_features():
    batch = collate_scenes([_sample(2, "a"), _sample(3, "b")])
    assert batch.offset.tolist() == [2, 5] and batch.batch.tolist() == [0, 0, 1, 1, 1] and batch.batch_size == 2
    assert batch.names == ("a", "b") and batch.conditions == ("S3DIS", "S3DIS")
    assert batch.feat.shape == (5, 6) and torch.equal(batch.feat[0], torch.tensor([0.5, 0.5, 0.5, 1, 1, 1]))
    assert batch.segment.tolist() == [0, 1, 0, 1, 2]
    coord_color = collate_scenes([_sample(2, "a")], feat_keys=("coord", "color"))
    assert coord_color.feat[1].tolist() == [3, 4, 5, 0.5, 0.5, 0.5]
    x = batch.sparse_tensor()
    assert x.indices.dtype == torch.int32 and x.indices[:, 0].tolist() == [0, 0, 1, 1, 1]
    assert torch.equal(x.indices[:, 1:], batch.grid_coord) and x.batch_size == 2 and x.features is batch.feat
    assert batch.to("cpu").offset.equal(batch.offset)


def test_inverse_maps_whole_scenes_to_batch_rows():
    scenes = []
    for name, points in (("a", [[0.1, 0, 0], [0.2, 0, 0], [1.5, 0, 0]]), ("b", [[0, 0, 0], [2.5, 0, 0]])):
        sample = SceneSample(torch.tensor(points), torch.zeros(len(points), 3), None, torch.arange(len(points)) + 10,
                             torch.zeros(len(points), dtype=torch.long), name, "ScanNet")
        scenes.append(GridSample(grid_size=1.0, return_inverse=True)(sample, torch.Generator().manual_seed(0)))
    batch = collate_scenes(scenes, feat_keys=("color",))
    assert batch.offset.tolist() == [2, 4]
    assert batch.inverse.tolist() == [0, 0, 1, 2, 3] and batch.origin_offset.tolist() == [3, 5]
    assert batch.origin_segment.tolist() == [10, 11, 12, 10, 11]
    # Whole-scene labels through the voxel rows: each point gets a label of its voxel.
    assert batch.segment[batch.inverse][2:].tolist() == [12, 10, 11]


def test_fragments_keep_their_scene_rows():
    sample = _sample(4, "a", grid=False)
    fragments = GridFragments(grid_size=100.0)(sample)
    batch = collate_scenes(fragments)
    assert batch.index.tolist() == [0, 1, 2, 3] and batch.offset.tolist() == [1, 2, 3, 4]


def test_bad_batches():
    with pytest.raises(ValueError, match="no samples"):
        collate_scenes([])
    with pytest.raises(ValueError, match="has no grid_coord; apply GridSample"):
        collate_scenes([_sample(2, "a", grid=False)])
    with pytest.raises(ValueError, match="scene 'b' has no normal"):
        collate_scenes([_sample(2, "a"), _sample(2, "b", normal=False)])
    with pytest.raises(ValueError, match="feat_keys must be"):
        collate_scenes([_sample(2, "a")], feat_keys=("colour",))
    with_inverse = GridSample(grid_size=1.0, return_inverse=True)(_sample(2, "a"), torch.Generator())
    with pytest.raises(ValueError, match="some samples have inverse"):
        collate_scenes([with_inverse, _sample(2, "b")])
