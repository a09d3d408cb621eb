"""The options every ``ppt data`` generator (``synth-*``, ``data-efficient``) shares
(ppt.data.synth_cli), checked on each."""

import pytest

from ppt.cli import main

# each command with its required options besides --out, and one count option it validates
COMMANDS = {
    "synth-rooms": (["--flavor", "scannet", "--scenes", "1"], "--density", "must be positive"),
    "synth-objects": ([], "--points", "must be >= 1"),
    "synth-parts": ([], "--test-per-class", "must be >= 1"),
    "synth-renders": ([], "--views", "must be >= 1"),
    "synth-frames": ([], "--frames", "must be >= 1"),
    "data-efficient": (["--root", "nowhere"], "--points", "must be >= 1"),
    "synth-sweeps": (["--flavor", "waymo"], "--azimuth-steps", "must be >= 1"),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_out_is_required_and_bad_counts_name_the_option(command, tmp_path, capsys):
    required, count_option, message = COMMANDS[command]
    with pytest.raises(SystemExit) as exit_info:
        main(["data", command, *required])
    assert exit_info.value.code == 2 and "--out" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["data", command, "--out", str(tmp_path), *required, count_option, "0"])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"argument {count_option}: {message}, got 0" in error
    assert not any(tmp_path.iterdir())  # nothing written


def test_image_sizes_parse_and_reject_other_text(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["data", "synth-frames", "--out", str(tmp_path), "--size", "320"])
    assert "argument --size: expected WIDTHxHEIGHT, got '320'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["data", "synth-frames", "--out", str(tmp_path), "--depth-size", "0x4"])
    assert "argument --depth-size: sizes must be >= 1, got '0x4'" in capsys.readouterr().err
