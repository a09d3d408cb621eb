import os
import pickle

import numpy as np
import pytest

from ppt.data import UnsafePickleError, load_array_pickle


@pytest.mark.parametrize("protocol", [2, 4, pickle.HIGHEST_PROTOCOL])
def test_arrays_scalars_and_containers_load(tmp_path, protocol):
    content = {
        "train": [(np.arange(12, dtype=np.float32).reshape(4, 3), 1, np.int32(7))],
        "test": [np.array([3], dtype=np.int32), (1.5, "name", None, b"raw"), {2, 3}],
    }
    path = tmp_path / "data.pkl"
    path.write_bytes(pickle.dumps(content, protocol=protocol))
    loaded = load_array_pickle(path)
    points, label, source = loaded["train"][0]
    np.testing.assert_array_equal(points, content["train"][0][0])
    assert points.dtype == np.float32 and label == 1 and source == 7 and isinstance(source, np.int32)
    np.testing.assert_array_equal(loaded["test"][0], [3])
    assert loaded["test"][1] == (1.5, "name", None, b"raw") and loaded["test"][2] == {2, 3}


class _RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_is_rejected_before_it_runs(tmp_path):
    marker = tmp_path / "payload_ran"
    path = tmp_path / "modelnet40_train_8192pts_fps.dat"
    path.write_bytes(pickle.dumps([[np.zeros((2, 3), np.float32)], [_RunsShell(marker)]]))
    # Plain pickle would run the command; the restricted loader must refuse it.
    with pytest.raises(UnsafePickleError, match=r"refusing to unpickle global '(posix|os|nt)\.system'") as error:
        load_array_pickle(path)
    assert str(path) in str(error.value)
    assert not marker.exists()


def test_other_globals_are_rejected(tmp_path):
    path = tmp_path / "eval.pkl"
    # GLOBAL builtins.eval, then call it: protocol-0 opcodes written by hand.
    path.write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        load_array_pickle(path)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pkl"):
        load_array_pickle(tmp_path / "nothing.pkl")
    path = tmp_path / "broken.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3])[:-3])
    with pytest.raises(pickle.UnpicklingError, match="broken.pkl"):
        load_array_pickle(path)


def test_pickles_written_by_numpy_1_load(tmp_path):
    # NumPy 1.x (which wrote the published caches and folds) names numpy.core.multiarray.
    data = pickle.dumps([np.ones((2, 3), np.float32), np.int32(4)], protocol=2)
    data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in data
    path = tmp_path / "old.pkl"
    path.write_bytes(data)
    points, label = load_array_pickle(path)
    np.testing.assert_array_equal(points, np.ones((2, 3), np.float32))
    assert label == 4
