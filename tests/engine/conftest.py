"""Tiny recipes for the engine tests: synthetic data in a per-session cache, small networks,
one intra-op thread (whole-pipeline tests on tiny inputs)."""

import os
import subprocess
import sys

import pytest
import torch

TINY_SCENE = [
    "data.synthetic.scenes=6", "data.synthetic.density=0.05", "data.grid_size=0.1", "data.point_max=3000",
    "model.base_channels=4", "model.channels=[4,8,8,4]", "model.layers=[1,1,1,1]", "train.tensorboard=false",
    "train.eval_every=0", "train.checkpoint_every=0", "train.amp=none",
]
TINY_OBJECT = [
    "data.synthetic.train_per_class=2", "data.synthetic.test_per_class=1", "data.synthetic.object_points=128",
    "data.num_points=64", "data.batch_size=6", "data.val_batch_size=16", "model.depth=1", "model.dim=24",
    "model.heads=2", "model.num_groups=8", "model.group_size=8", "train.tensorboard=false", "train.eval_every=0",
    "train.checkpoint_every=0", "train.amp=none",
]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("ppt-cache")


@pytest.fixture
def scene_overrides(cache_dir):
    return [f"data.cache_dir={cache_dir}", *TINY_SCENE]


@pytest.fixture
def object_overrides(cache_dir):
    return [f"data.cache_dir={cache_dir}", *TINY_OBJECT]


def set_options(overrides):
    """``--set KEY=VALUE`` for each override."""
    return [word for override in overrides for word in ("--set", override)]


@pytest.fixture
def run_ppt():
    """``run_ppt(argv, sets=overrides)``: the exit status of ``ppt ARGV --set ...`` run through the
    command's entry point in this process."""
    from ppt.cli import main

    def run(argv, sets=()):
        with pytest.raises(SystemExit) as exit_info:
            main([*argv, *set_options(sets)])
        return exit_info.value.code
    return run


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def ppt_command():
    """Run the real ``ppt`` command (``python -m ppt``, as the console script does) in a
    subprocess with one intra-op thread; returns the completed process (text output)."""
    def run(*args, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        return subprocess.run([sys.executable, "-m", "ppt", *map(str, args)], capture_output=True, text=True,
                              env=env, timeout=timeout, **kwargs)
    return run
