"""Synthetic data written once into the cache, also when independent runs start together."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from ppt.engine.builders import write_once

# A writer slow enough that a second process arrives while the first is still writing; every call is
# recorded in calls.txt so the test can count them.
_WRITER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from ppt.engine.builders import write_once

    folder, calls = Path(sys.argv[1]), Path(sys.argv[2])

    def write(partial):
        with open(calls, "a") as log:
            log.write(f"{os.getpid()}\\n")
        partial.mkdir(parents=True)
        for index in range(5):
            (partial / f"part{index}.txt").write_text(str(os.getpid()))
            time.sleep(0.2)

    write_once(folder, "test", write, quiet=True)
    print(sorted(path.name for path in folder.iterdir()))
""")


def test_concurrent_first_use_writes_once_and_every_process_gets_the_whole_folder(tmp_path: Path):
    folder, calls = tmp_path / "cache" / "synthetic" / "data", tmp_path / "calls.txt"
    processes = [subprocess.Popen([sys.executable, "-c", _WRITER, str(folder), str(calls)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], [err for _, err in outputs]
    assert len(calls.read_text().split()) == 1
    expected = str([".complete"] + [f"part{index}.txt" for index in range(5)])
    assert [out.strip() for out, _ in outputs] == [expected] * 3
    writers = {(folder / f"part{index}.txt").read_text() for index in range(5)}
    assert len(writers) == 1


def test_an_interrupted_write_is_redone(tmp_path: Path):
    folder = tmp_path / "data"
    partial = tmp_path / "data.partial"
    partial.mkdir()
    (partial / "stale.txt").write_text("left by a killed run")

    def write(target: Path):
        target.mkdir()
        (target / "fresh.txt").write_text("new")

    assert write_once(folder, "test", write, quiet=True) == folder
    assert sorted(path.name for path in folder.iterdir()) == [".complete", "fresh.txt"]
    assert not partial.exists()
    calls = []
    write_once(folder, "test", calls.append, quiet=True)
    assert calls == []
