"""Every ``pip install`` the README and docs/ give works as written: an install of the checkout
builds the extension against the installed torch, so it needs ``--no-build-isolation``; the extras
it names exist; nothing installs ``ppt[...]`` from the index (ppt is installed from its checkout)."""

import re
import shlex
import tomllib
from pathlib import Path

import pytest

from ppt._extras import install_hint

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXTRAS = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
# a pip command ends at the end of its line or inline code span, or at a shell separator
PIP_INSTALL = re.compile(r"pip install ([^`\n;&|]*)")


def _pip_installs(path: Path) -> list[tuple[int, list[str]]]:
    commands = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        for match in PIP_INSTALL.finditer(line):
            commands.append((number, shlex.split(match.group(1).split(" (")[0].split(" # ")[0])))
    return commands


def _checkout_extras(words: list[str]) -> list[str] | None:
    """The extras of an install of the checkout (``.`` / ``.[a,b]``), or None for other installs."""
    for word in words:
        if word == ".":
            return []
        if word.startswith(".["):
            return [extra.strip() for extra in word[2:].rstrip("]").split(",")]
    return None


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_install_lines_work_as_written(document):
    for number, words in _pip_installs(document):
        where = f"{document.relative_to(ROOT)}:{number}: pip install {shlex.join(words)}"
        assert not any(word.startswith("ppt[") or word == "ppt" for word in words), \
            f"{where}: ppt is not installed from an index; install the checkout"
        extras = _checkout_extras(words)
        if extras is not None:
            assert "--no-build-isolation" in words, f"{where}: building the checkout needs --no-build-isolation"
            assert set(extras) <= EXTRAS, f"{where}: unknown extra(s) {sorted(set(extras) - EXTRAS)}"


def test_the_documents_hold_install_lines():
    """The parser sees the README's and the docs' commands (a test of the test)."""
    commands = [words for document in DOCUMENTS for _, words in _pip_installs(document)]
    assert ["--no-build-isolation", "-e", ".[test]"] in commands and len(commands) >= 8


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_error_messages_name_the_commands_of_each_extra(extra):
    hint = install_hint(extra)
    assert hint.startswith(f'pip install --no-build-isolation -e ".[{extra}]" in the ppt checkout, or pip install ')
    packages = shlex.split(hint.split(", or pip install ", 1)[1])
    assert packages and not any(package.startswith("ppt") for package in packages)
