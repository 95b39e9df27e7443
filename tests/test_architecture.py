"""The tree is the architecture: no import cycle inside course_lib, lessons never import each
other, the core imports no lesson, UI or tool, every notebook has its lesson module and test file,
and the package docstring maps each notebook to its lesson."""
import ast
from pathlib import Path

import pytest

import course_lib

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "course_lib"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path = ROOT) -> set[str]:
    """Every course_lib module that ``path`` imports, at any depth of the file (function-level
    imports count: they hide a cycle, they do not remove it)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("course_lib")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("course_lib"):
                continue
            for alias in node.names:  # `from course_lib.core import claims` imports a module
                sub = f"{mod}.{alias.name}"
                found.add(sub if (root / (sub.replace(".", "/") + ".py")).exists() else mod)
    return found


def graph(lib: Path = LIB) -> dict[str, set[str]]:
    mods = {module_name(p, lib.parent): p for p in lib.rglob("*.py")}
    return {m: {i for i in imports_of(p, lib.parent) if i in mods and i != m} for m, p in mods.items()}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(g.get(m, ())):
            if state.get(n) == "open":
                return stack[stack.index(n):] + [n]
            if n not in state and (c := visit(n)):
                return c
        state[m] = "done"
        stack.pop()
        return None
    for m in sorted(g):
        if m not in state and (c := visit(m)):
            return c
    return None


def test_there_is_no_import_cycle_in_course_lib():
    cycle = find_cycle({m: {i for i in deps if not i.endswith("__init__")} for m, deps in graph().items()})
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_check_can_fail():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("module, deps", sorted(graph().items()))
def test_layers_import_only_downwards(module, deps):
    """core <- ui <- lessons; tools may use core and ui; a lesson never imports another lesson."""
    layer = module.split(".")[1] if module.count(".") else "package"
    allowed = {"core": {"core"}, "ui": {"core", "ui"}, "lessons": {"core", "ui"},
               "tools": {"core", "ui", "tools"}, "package": set()}.get(layer, {"core", "ui", "lessons", "tools"})
    for dep in deps:
        dep_layer = dep.split(".")[1]
        assert dep_layer in allowed or (dep_layer == "lessons" and dep == module), \
            f"{module} imports {dep}: a {layer} module may import only {sorted(allowed)}"


def test_import_graph_sees_relative_and_function_level_imports(tmp_path):
    pkg = tmp_path / "course_lib"
    (pkg / "lessons").mkdir(parents=True)
    (pkg / "lessons" / "a.py").write_text("def f():\n    from . import b\n")
    (pkg / "lessons" / "b.py").write_text("from ..lessons.a import f\n")
    g = graph(pkg)
    assert g["course_lib.lessons.a"] == {"course_lib.lessons.b"}
    assert g["course_lib.lessons.b"] == {"course_lib.lessons.a"}


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_has_its_lesson_module_and_test_file(nb):
    name = nb.stem.split("_", 1)[1]
    assert (LIB / "lessons" / f"{name}.py").exists(), f"lessons/{name}.py is missing for {nb.name}"
    assert (ROOT / "tests" / "lessons" / f"test_{name}.py").exists(), f"tests/lessons/test_{name}.py is missing"
    assert f"lessons.{name}``" in course_lib.__doc__, f"course_lib's docstring does not map {nb.stem}"


def test_every_lesson_module_belongs_to_a_notebook():
    names = {nb.stem.split("_", 1)[1] for nb in NOTEBOOKS}
    lessons = {p.stem for p in (LIB / "lessons").glob("*.py")} - {"__init__"}
    assert lessons <= names, f"lesson modules without a notebook: {sorted(lessons - names)}"
