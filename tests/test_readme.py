"""The README's Train and Layout sections name every shipped recipe and every command of ``ppt``."""

import argparse
import re
from pathlib import Path

import pytest

from ppt.cli import build_parser
from ppt.engine import list_recipes

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _section(title: str) -> str:
    match = re.search(rf"^## {title}\n(.*?)(?=^## )", README, flags=re.MULTILINE | re.DOTALL)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


def _commands() -> list[str]:
    commands = []
    for name, parser in _subcommands(build_parser()).items():
        tools = _subcommands(parser) if name == "data" else {}
        commands += [f"ppt {name} {tool}" for tool in tools] or [f"ppt {name}"]
    return commands


@pytest.mark.parametrize("recipe", list_recipes())
def test_the_train_section_lists_every_recipe(recipe):
    assert f"`{recipe}`" in _section("Train"), f"README's Train section does not list the recipe {recipe}"


@pytest.mark.parametrize("command", _commands())
def test_the_train_section_lists_every_command(command):
    assert f"`{command}`" in _section("Train") or f"`{command} " in _section("Train"), \
        f"README's Train section does not list `{command}`"


def _layout_entry(path: str) -> str:
    """The Layout block's entry of ``path``: its line and the indented lines that continue it."""
    lines = _section("Layout").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(path))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith(" ")), len(lines))
    return "\n".join(lines[start:end])


def test_the_layout_names_every_command_of_ppt_cli():
    entry = _layout_entry("ppt/cli.py")
    for name in _subcommands(build_parser()):
        assert re.search(rf"\b{re.escape(name)}\b", entry), f"the Layout's ppt/cli.py entry does not name {name}"


def _layout_paths() -> list[str]:
    """The paths that start the Layout block's entries (``a, b`` entries give both)."""
    lines = [line for line in _section("Layout").splitlines() if line and not line.startswith((" ", "```"))]
    return [path.strip() for line in lines for path in line.split("  ")[0].split(",")]


def test_the_layout_has_an_entry_for_every_package_of_ppt():
    root = Path(__file__).resolve().parents[1]
    packages = sorted(f"{init.parent.relative_to(root).as_posix()}/" for init in (root / "ppt").rglob("__init__.py")
                      if init.parent != root / "ppt")
    missing = [package for package in packages if package not in _layout_paths()]
    assert not missing, f"README's Layout section has no entry for {missing}"


def test_every_ppt_path_in_the_layout_exists():
    root = Path(__file__).resolve().parents[1]
    stale = [path for path in _layout_paths() if path.startswith("ppt/") and not (root / path).exists()]
    assert not stale, f"README's Layout section names paths that do not exist: {stale}"
