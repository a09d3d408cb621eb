"""Controlled variants of the synthetic rooms (``ppt.data.scenes.rooms.variants``): another flavor's
rooms and capture in a layout, a relabelled kind, permuted or absent colours; through
``write_synthetic_rooms`` and ``ppt data synth-rooms``."""

import numpy as np
import pytest

from ppt.cli import main
from ppt.data.scenes import ScanNet, Structured3D
from ppt.data.scenes.rooms import synthesize_room, write_synthetic_rooms
from ppt.data.scenes.rooms.flavors import STRUCTURED3D
from ppt.data.scenes.rooms.variants import RoomVariant, parse_relabel
from ppt.data.scenes.rooms.writers import _scene_seed
from ppt.data.scenes.scannet import SCANNET_CLASSES


def _first_train_scene(root):
    return sorted(root.glob("train/**/coord.npy"))[0].parent


def test_default_variant_writes_what_the_flavor_writes(tmp_path):
    write_synthetic_rooms(tmp_path / "a", "scannet", 3, seed=4, density=0.02)
    write_synthetic_rooms(tmp_path / "b", "scannet", 3, seed=4, density=0.02, variant=RoomVariant())
    for path in (tmp_path / "a").glob("**/*.npy"):
        assert np.array_equal(np.load(path), np.load(tmp_path / "b" / path.relative_to(tmp_path / "a")))


def test_capture_writes_another_flavors_rooms_in_the_layout_and_its_labels(tmp_path):
    write_synthetic_rooms(tmp_path, "structured3d", 2, seed=4, density=0.02, variant=RoomVariant(capture="scannet"))
    scene = tmp_path / "train" / "scene_00000" / "room_0"
    room = synthesize_room("scannet", _scene_seed(4, 0), density=0.02)  # the first room of the seed, ScanNet's capture
    np.testing.assert_array_equal(np.load(scene / "coord.npy"), room.coord)
    np.testing.assert_array_equal(np.load(scene / "color.npy"), room.color)
    # labelled in Structured3D's 25 classes: ScanNet's ignored ceiling is Structured3D's "ceiling"
    expected = room.labels(STRUCTURED3D.class_names, STRUCTURED3D.labels)
    np.testing.assert_array_equal(np.load(scene / "segment.npy")[:, 0], expected)
    assert (expected == STRUCTURED3D.class_names.index("ceiling")).any()
    assert len(Structured3D(tmp_path, "train")) == 1


def test_relabel_files_a_kind_under_another_class(tmp_path):
    write_synthetic_rooms(tmp_path / "plain", "scannet", 6, seed=2, density=0.03)
    write_synthetic_rooms(tmp_path / "moved", "scannet", 6, seed=2, density=0.03,
                          variant=RoomVariant(relabel={"cabinet": "otherfurniture"}))
    cabinet, other = SCANNET_CLASSES.index("cabinet"), SCANNET_CLASSES.index("otherfurniture")
    cabinets = 0
    for path in (tmp_path / "plain").glob("*/*/segment20.npy"):
        plain, moved = np.load(path), np.load(tmp_path / "moved" / path.relative_to(tmp_path / "plain"))
        cabinets += int((plain == cabinet).sum())
        assert not (moved == cabinet).any()
        np.testing.assert_array_equal(moved, np.where(plain == cabinet, other, plain))
    assert cabinets > 0, "the seed's rooms hold no cabinet: the check saw nothing"


@pytest.mark.parametrize("mode", ["permute", "none"])
def test_colors(tmp_path, mode):
    write_synthetic_rooms(tmp_path / "keep", "s3dis", 2, seed=1, density=0.02)
    write_synthetic_rooms(tmp_path / mode, "s3dis", 2, seed=1, density=0.02, variant=RoomVariant(colors=mode))
    for path in (tmp_path / "keep").glob("*/*/color.npy"):
        kept, changed = np.load(path), np.load(tmp_path / mode / path.relative_to(tmp_path / "keep"))
        assert changed.dtype == np.uint8
        expected = kept[:, [1, 2, 0]] if mode == "permute" else np.zeros_like(kept)
        np.testing.assert_array_equal(changed, expected)
        np.testing.assert_array_equal(np.load(path.with_name("coord.npy")),
                                      np.load((tmp_path / mode / path.relative_to(tmp_path / "keep")).with_name("coord.npy")))


@pytest.mark.parametrize("variant, message", [
    (RoomVariant(capture="kitti"), "capture must be one of"),
    (RoomVariant(colors="grey"), "colors must be one of"),
    (RoomVariant(relabel={"spaceship": "wall"}), "unknown object kind 'spaceship'"),
    (RoomVariant(relabel={"cabinet": "clutter"}), "'clutter' is not a class of scannet"),
])
def test_bad_variants(tmp_path, variant, message):
    with pytest.raises(ValueError, match=message):
        write_synthetic_rooms(tmp_path, "scannet", 1, variant=variant)


def test_parse_relabel():
    assert parse_relabel(["cabinet=otherfurniture", "shower_curtain = curtain"]) == {
        "cabinet": "otherfurniture", "shower curtain": "curtain"}
    with pytest.raises(ValueError, match="expected KIND=CLASS"):
        parse_relabel(["cabinet"])


def test_cli(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "synth-rooms", "--flavor", "scannet", "--out", str(tmp_path), "--scenes", "2", "--density",
              "0.02", "--capture", "structured3d", "--relabel", "cabinet=otherfurniture", "--colors", "none"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "wrote 2 scannet rooms" in out
    assert "variant: capture structured3d, cabinet labelled otherfurniture, colours none" in out
    sample = ScanNet(tmp_path, "train")[0]
    assert not sample.color.any()
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "synth-rooms", "--flavor", "scannet", "--out", str(tmp_path / "x"), "--scenes", "1",
              "--relabel", "cabinet=beam"])
    assert exit_info.value.code == 2
    assert "relabel: 'beam' is not a class of scannet" in capsys.readouterr().err
