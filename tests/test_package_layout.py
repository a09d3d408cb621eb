"""The package's shape: every public name imports, ``ppt`` has no import circle, and the engine's
task registry knows its families by name only."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
from pathlib import Path

import pytest

import ppt

PACKAGE_ROOT = Path(ppt.__file__).parent


def module_files() -> dict[str, Path]:
    """Every module of ``ppt`` by dotted name (a package by its ``__init__.py``)."""
    files = {}
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        parts = ("ppt",) + path.relative_to(PACKAGE_ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    return files


def _import_time_statements(body: list[ast.stmt]):
    """The import statements Python runs when the module (or a class body in it) executes: those in
    function bodies run later and those under ``if TYPE_CHECKING:`` never."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                yield from _import_time_statements(node.body)
            yield from _import_time_statements(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _import_time_statements(block)
        elif isinstance(node, (ast.With, ast.ClassDef)):
            yield from _import_time_statements(node.body)


def import_graph() -> dict[str, set[str]]:
    """Module -> the ``ppt`` modules it imports at import time. ``from X import name`` imports the
    submodule ``X.name`` when there is one, else ``X`` itself."""
    files = module_files()
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        edges = graph[module] = set()
        for node in _import_time_statements(ast.parse(path.read_text(), str(path)).body):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if is_module(f"{base}.{alias.name}", files) else base
                           for alias in node.names]
            edges.update(target for target in map(moved_to, targets) if target in files and target != module)
    return graph


def is_module(name: str, files: dict[str, Path]) -> bool:
    """Whether ``name`` is a module: one of ``files``, or another kind (``ppt._C``, an extension)."""
    if name in files:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def moved_to(name: str) -> str:
    """The module that ``ppt.data``'s old flat-layout name ``name`` stands for (else ``name``)."""
    from ppt.data import MOVED_MODULES

    package, _, leaf = name.rpartition(".")
    return MOVED_MODULES[leaf] if package == "ppt.data" and leaf in MOVED_MODULES else name


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` as ``[a, b, ..., a]``, or None."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once fully explored
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[module] = "done"
        path.pop()
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, stack = set(), [start]
    while stack:
        for target in graph[stack.pop()] - seen:
            seen.add(target)
            stack.append(target)
    return seen


def test_find_cycle_reports_a_circle_and_passes_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_import_graph_follows_from_imports_of_submodules_and_packages():
    graph = import_graph()
    assert "ppt.engine.tasks.base" in graph["ppt.engine.tasks.segmentation"]  # from ppt.engine.tasks.base import Task
    assert "ppt.data" in graph["ppt.engine.tasks.segmentation"]  # from ppt.data import SceneBatch
    assert "ppt.data.scenes.transforms" in graph["ppt.engine.tasks.segmentation"]  # from ppt.data.scenes import transforms as T


def test_ppt_has_no_import_cycle():
    assert find_cycle(import_graph()) is None, f"import circle: {' -> '.join(find_cycle(import_graph()))}"


def test_task_registry_and_base_import_no_family():
    from ppt.engine.tasks import TASK_FAMILIES

    graph = import_graph()
    families = {target.partition(":")[0] for target in TASK_FAMILIES.values()}
    assert families <= set(graph)
    for module in ("ppt.engine.tasks", "ppt.engine.tasks.base"):
        assert not reachable(graph, module) & families, module
    for family in families:
        assert "ppt.engine.tasks.base" in reachable(graph, family)


def test_every_task_name_resolves_to_its_family():
    from ppt.engine.config import TASKS
    from ppt.engine.tasks import TASK_FAMILIES, Task, task_class
    from ppt.engine.tasks.base import Task as BaseTask

    assert Task is BaseTask
    assert TASKS == tuple(TASK_FAMILIES)
    for name, target in TASK_FAMILIES.items():
        family = task_class(name)
        assert issubclass(family, BaseTask) and f"{family.__module__}:{family.__name__}" == target
    from ppt.engine.tasks import ClassificationTask, SegmentationTask  # the names tasks.py exported
    from ppt.engine.tasks.classification import ClassificationTask as classification
    from ppt.engine.tasks.segmentation import SegmentationTask as segmentation

    assert (SegmentationTask, ClassificationTask) == (segmentation, classification)
    with pytest.raises(ImportError, match="cannot import name .DetectionTask."):
        from ppt.engine.tasks import DetectionTask  # noqa: F401
    with pytest.raises(ValueError, match="task must be one of .*'segmentation'.*got 'detection'"):
        task_class("detection")


# a __main__ module runs its command when imported (python -m ...) and defines no names
@pytest.mark.parametrize("module", sorted(name for name in module_files() if not name.endswith(".__main__")))
def test_every_public_name_imports(module):
    imported = importlib.import_module(module)
    missing = [name for name in getattr(imported, "__all__", ()) if not hasattr(imported, name)]
    assert not missing, f"{module}.__all__ names what it does not define: {missing}"


def test_walk_covers_every_module():
    walked = {info.name for info in pkgutil.walk_packages([str(PACKAGE_ROOT)], "ppt.")}
    assert walked | {"ppt"} == set(module_files())


def test_flat_layout_module_names_import_the_modules_that_moved():
    from ppt.data import MOVED_MODULES

    files = module_files()
    for old, new in MOVED_MODULES.items():
        assert f"ppt.data.{old}" not in files and new in files, (old, new)  # no file shadows the old name
        module = importlib.import_module(f"ppt.data.{old}")
        assert module is importlib.import_module(new) and module.__spec__.name == module.__name__ == new
    from ppt.data.rooms.flavors import FLAVORS  # a moved package keeps its submodules
    from ppt.data.scenes.rooms.flavors import FLAVORS as flavors

    assert FLAVORS is flavors
    from ppt.data import object_transforms
    from ppt.data.objects import transforms

    assert object_transforms is transforms
    assert moved_to("ppt.data.scannet_frames") == "ppt.data.frames.scannet_frames"
    assert moved_to("ppt.data.scenes") == "ppt.data.scenes"


def test_an_unknown_data_module_is_still_not_found():
    with pytest.raises(ModuleNotFoundError, match="ppt.data.lidar"):
        importlib.import_module("ppt.data.lidar")
