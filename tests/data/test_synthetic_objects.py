import h5py
import numpy as np
import pytest

from ppt.cli import main
from ppt.data import SCANOBJECTNN_CLASSES, ScanObjectNN, write_synthetic_objects
from ppt.data.objects.synthetic import _BUILDERS, synthesize_object, synthesize_scan


@pytest.mark.parametrize("label", range(len(SCANOBJECTNN_CLASSES)))
def test_every_class_has_varying_parts(label):
    rng = np.random.default_rng(label)
    clouds = [synthesize_object(label, rng, num_points=512) for _ in range(6)]
    for points, parts in clouds:
        assert points.shape == (512, 3) and points.dtype == np.float32 and np.isfinite(points).all()
        assert np.isclose(np.linalg.norm(points, axis=1).max(), 1.0, atol=1e-5)
        assert np.abs(points.mean(axis=0)).max() < 1e-5
        assert parts.min() >= 0
    # Instances differ in structure (which parts, how many), not only in proportions.
    structures = {tuple(type(part).__name__ for part in _BUILDERS[SCANOBJECTNN_CLASSES[label]](rng))
                  for _ in range(50)}
    assert len(structures) > 1

def test_scans_have_background_and_perturbation():
    rng = np.random.default_rng(0)
    fractions = {False: [], True: []}
    for perturb in (False, True):
        for label in range(len(SCANOBJECTNN_CLASSES)):
            points, mask = synthesize_scan(label, rng, num_points=512, perturb=perturb)
            assert points.shape == (512, 3) and np.isclose(np.linalg.norm(points, axis=1).max(), 1.0, atol=1e-5)
            fractions[perturb].append((mask >= 0).mean())
    assert all(0 < f < 1 for f in fractions[False])  # object and clutter in every crop
    assert np.mean(fractions[True]) < np.mean(fractions[False])  # a shifted box cuts the object, adds clutter


def test_written_files_read_as_scanobjectnn(tmp_path):
    clean = write_synthetic_objects(tmp_path, "clean", seed=1, train_per_class=2, test_per_class=1, num_points=128)
    background = write_synthetic_objects(tmp_path, "background", seed=1, train_per_class=2, test_per_class=1,
                                         num_points=128)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in clean + background) == [
        "main_split/test_objectdataset.h5", "main_split/test_objectdataset_augmentedrot_scale75.h5",
        "main_split/training_objectdataset.h5", "main_split/training_objectdataset_augmentedrot_scale75.h5",
        "main_split_nobg/test_objectdataset.h5", "main_split_nobg/training_objectdataset.h5"]
    for variant, background_expected in (("OBJ_ONLY", False), ("OBJ_BG", True), ("PB_T50_RS", True)):
        train = ScanObjectNN(tmp_path, "train", variant)
        assert len(train) == 30 and sorted(set(train.labels.tolist())) == list(range(15))
        assert len(ScanObjectNN(tmp_path, "test", variant)) == 15
        with h5py.File(train.path) as file:
            assert file["data"].shape == (30, 128, 3)
            assert bool((file["mask"][()] == -1).any()) == background_expected
    again = write_synthetic_objects(tmp_path / "again", "clean", seed=1, train_per_class=2, test_per_class=1,
                                    num_points=128)
    with h5py.File(clean[0]) as first, h5py.File(again[0]) as second:
        np.testing.assert_array_equal(first["data"][()], second["data"][()])


def test_cli(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_code:
        main(["data", "synth-objects", "--out", str(tmp_path), "--variant", "background", "--seed", "3",
              "--train-per-class", "1", "--test-per-class", "1", "--points", "64"])
    assert exit_code.value.code == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) == 4 and all(path.endswith(".h5") for path in printed)
    assert len(ScanObjectNN(tmp_path, "test", "PB_T50_RS")) == 15
    with pytest.raises(ValueError, match="train_per_class must be >= 1"):
        write_synthetic_objects(tmp_path, "clean", train_per_class=0)
    with pytest.raises(ValueError, match="variant must be one of"):
        write_synthetic_objects(tmp_path, "noisy")
