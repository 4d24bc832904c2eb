"""The layout stays honest: the README lists every module, handlers/ stays Slack-free, no import
cycles, and no path in the code or tests leads outside the repository.

Each rule is a function over source text or a module, so each is also shown to fail on a small
counter-example: a rule that cannot fail would guard nothing.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

from tests.architecture import (
    README,
    ROOT,
    Import,
    Module,
    entry_line,
    imports_of,
    modules,
    readme_section,
    render_section,
)

MODULES = modules()
MODULE_NAMES = {module.name for module in MODULES}


def module_id(module: Module) -> str:
    return module.name


# ---------------------------------------------------------------------------------------------
# The README's Architecture section

REGENERATE = "run `.venv/bin/python -m tests.architecture --write`"


@pytest.mark.parametrize("module", MODULES, ids=module_id)
def test_every_module_is_listed_in_the_readme_architecture(module: Module) -> None:
    listed = readme_section(README.read_text()).splitlines()
    assert entry_line(module) in listed, (
        f"{module.name} is missing from README.md's Architecture section, or its docstring's first "
        f"line changed: {REGENERATE}"
    )


def test_the_readme_architecture_lists_nothing_else() -> None:
    # also catches a module that was removed or moved but is still listed
    assert readme_section(README.read_text()) == render_section(), (
        f"README.md's Architecture section is not what the tree gives: {REGENERATE}"
    )


def summary_problem(docstring: str | None) -> str | None:
    """Why a docstring's first line cannot stand alone in the README's list, or None when it can."""
    if not docstring or not docstring.strip():
        return "no module docstring"
    first, _, rest = docstring.partition("\n")
    if not first.strip():
        return "the docstring does not start on its first line"
    if rest and rest.split("\n", 1)[0].strip():
        return "the first line runs on into the next one: end the sentence there, then a blank line"
    if not first.rstrip().endswith((".", "?")):
        return "the first line is not a whole sentence"
    return None


@pytest.mark.parametrize("module", MODULES, ids=module_id)
def test_every_module_docstring_starts_with_a_one_line_summary(module: Module) -> None:
    problem = summary_problem(module.docstring)
    assert problem is None, f"{module.path.relative_to(ROOT)}: {problem}"


@pytest.mark.parametrize(
    ("docstring", "problem"),
    [
        (None, "no module docstring"),
        ("Parse a record into tags, collecting\nevery problem.", "runs on"),
        ("Parse a record into tags: the tags", "not a whole sentence"),
        ("Parse a record.\n\nDetails follow.", None),
    ],
)
def test_a_summary_that_cannot_stand_alone_is_refused(docstring: str | None, problem: str | None) -> None:
    found = summary_problem(docstring)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


# ---------------------------------------------------------------------------------------------
# handlers/ is Slack-free: no bot, no Slack, no SQLite, no environment

BANNED_IMPORTS = ("bot", "slack_bolt", "slack_sdk", "sqlite3", "sqlite_utils")
ENVIRONMENT_READERS = ("environ", "environb", "getenv", "getenvb")


def boundary_violations(module: Module) -> list[str]:
    """Each import of a banned package and each read of the environment, by line."""
    found: list[tuple[int, str]] = []
    for imported in imports_of(module):
        if imported.module.split(".")[0] in BANNED_IMPORTS:
            found.append((imported.line, f"imports {imported.module}"))
        if imported.module == "os":
            found += [
                (imported.line, f"imports os.{name}")
                for name in imported.names
                if name in ENVIRONMENT_READERS
            ]
    for node in ast.walk(module.tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ENVIRONMENT_READERS
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ):
            found.append((node.lineno, f"reads os.{node.attr}"))
        if isinstance(node, ast.Call) and ast.unparse(node.func) in ("importlib.import_module", "__import__"):
            target = node.args[0] if node.args else None
            if (
                isinstance(target, ast.Constant)
                and isinstance(target.value, str)
                and target.value.split(".")[0] in BANNED_IMPORTS
            ):
                found.append((node.lineno, f"imports {target.value} dynamically"))
    return [f"line {line}: {what}" for line, what in sorted(found)]


@pytest.mark.parametrize("module", [m for m in MODULES if m.name.startswith("handlers")], ids=module_id)
def test_handlers_import_nothing_with_a_side_effect(module: Module) -> None:
    assert boundary_violations(module) == [], f"{module.path.relative_to(ROOT)} is not Slack-free"


def test_the_boundary_rule_finds_each_kind_of_violation(tmp_path: Path) -> None:
    (tmp_path / "leaky.py").write_text(
        '"""A module that breaks every rule."""\n'
        "import os\n"
        "import sqlite3\n"
        "from os import getenv\n"
        "from slack_sdk import WebClient\n"
        "\n"
        "def lazy() -> None:\n"
        "    from bot.store import database\n"
        "    import importlib\n"
        "    importlib.import_module('sqlite_utils')\n"
        "    return os.environ['HOME']\n"
    )
    module = Module("handlers.leaky", tmp_path / "leaky.py", is_package=False)
    assert boundary_violations(module) == [
        "line 3: imports sqlite3",
        "line 4: imports os.getenv",
        "line 5: imports slack_sdk",
        "line 8: imports bot.store",
        "line 10: imports sqlite_utils dynamically",
        "line 11: reads os.environ",
    ]


# ---------------------------------------------------------------------------------------------
# No circular imports


def import_graph(every_import: bool) -> dict[str, set[str]]:
    """Module → the modules of ours it imports: only at import time, or every import at all."""
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        imports: Iterable[Import] = imports_of(module)
        if not every_import:
            imports = [i for i in imports if not i.lazy and not i.type_checking]
        graph[module.name] = {
            target
            for imported in imports
            for target in imported.candidates()
            if target in MODULE_NAMES
            and target != module.name
            and not _own_package(module.name, target, imported)
        }
    return graph


def _own_package(importer: str, target: str, imported: Import) -> bool:
    """A package the importer lives in, run only because a sibling's import passes through it: being
    inside a package is not depending on it (`from bot.cli import x` still counts, as it names it)."""
    return importer.startswith(target + ".") and target != imported.module


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Each strongly connected group of two or more modules, as one cycle through its first member."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def connect(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [cycle_through(graph, group) for group in sorted(groups, key=min)]


def cycle_through(graph: Mapping[str, Iterable[str]], group: set[str]) -> list[str]:
    """A shortest path from the group's first member back to itself, inside the group."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for target in sorted(graph.get(node, ())):
                if target == start:
                    return [*paths[node], start]
                if target in group and target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {start}")


def test_no_import_cycle_at_import_time() -> None:
    # What Python runs while importing: a cycle here breaks depending on which module comes first.
    assert [" → ".join(cycle) for cycle in cycles(import_graph(every_import=False))] == []


def test_no_import_cycle_even_through_lazy_or_type_only_imports() -> None:
    # An import inside a function, or under TYPE_CHECKING, hides a cycle from Python, not from a reader.
    assert [" → ".join(cycle) for cycle in cycles(import_graph(every_import=True))] == []


def test_the_cycle_finder_names_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e2"}, "e2": {"e"}}
    assert cycles(graph) == [["a", "b", "c", "a"], ["e", "e2", "e"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


# ---------------------------------------------------------------------------------------------
# No path leaves the repository

SCANNED = ("tests", "bot", "handlers", "benchmarks")
PATH_BUILDERS = ("Path", "PurePath", "PosixPath", "os.path.join", "joinpath", "open", "os.chdir")
PARENT_COMPONENT = re.compile(r"(^|[/\\])\.\.([/\\]|$)")
# Written so that this file does not match itself.
OUTSIDE_TEXT = {
    "an absolute path into the work area": re.compile(r"(?<![\w/.-])/wor[k]\b"),
    "a sibling directory of the repository": re.compile(r"\.\.[/\\]share[d]\b"),
    "the parent-directory constant": re.compile(r"\bos\.pardi[r]\b"),
}


def levels_up(node: ast.expr, names: Mapping[str, int]) -> int | None:
    """How many directories above the file `node` is, when it is a path climbed from `__file__`."""
    if isinstance(node, ast.Name):
        return 0 if node.id == "__file__" else names.get(node.id)
    if isinstance(node, ast.Attribute) and node.attr == "parent":
        below = levels_up(node.value, names)
        return None if below is None else below + 1
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "parents"
        and isinstance(node.slice, ast.Constant)
        and isinstance(node.slice.value, int)
    ):
        below = levels_up(node.value.value, names)
        return None if below is None else below + node.slice.value + 1
    if isinstance(node, ast.Call):
        function = ast.unparse(node.func)
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("resolve", "absolute"):
            return levels_up(node.func.value, names)
        if function in ("Path", "PurePath", "os.path.abspath", "os.path.realpath") and node.args:
            return levels_up(node.args[0], names)
        if function == "os.path.dirname" and node.args:
            below = levels_up(node.args[0], names)
            return None if below is None else below + 1
    return None


def paths_leaving_root(relative: Path, source: str) -> list[str]:
    """Each place in one file's source that builds a path outside the repository root."""
    # The root is as many levels above the file as the file is deep in it (tests/x.py: two).
    depth = len(relative.parts)
    found: list[str] = []
    tree = ast.parse(source)
    names: dict[str, int] = {}
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target = statement.targets[0]
            level = levels_up(statement.value, names)
            if isinstance(target, ast.Name) and level is not None:
                names[target.id] = level
    for node in ast.walk(tree):
        if isinstance(node, ast.expr):
            level = levels_up(node, names)
            if level is not None and level > depth:
                found.append(f"line {node.lineno}: {ast.unparse(node)} is {level - depth} above the root")
        operands: list[ast.expr] = []
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            operands = [node.left, node.right]
        elif isinstance(node, ast.Call) and ast.unparse(node.func).endswith(PATH_BUILDERS):
            operands = list(node.args)
        for operand in operands:
            if isinstance(operand, ast.Constant) and PARENT_COMPONENT.search(str(operand.value)):
                found.append(f"line {operand.lineno}: a path through {operand.value!r}")
    for number, line in enumerate(source.splitlines(), start=1):
        found += [f"line {number}: {what}" for what, pattern in OUTSIDE_TEXT.items() if pattern.search(line)]
    return found


SOURCE_FILES = sorted(path for folder in SCANNED for path in (ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", SOURCE_FILES, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_path_leaves_the_repository(path: Path) -> None:
    # Everything the code and tests read lives in the repository: a checkout elsewhere must work.
    relative = path.relative_to(ROOT)
    assert paths_leaving_root(relative, path.read_text()) == [], f"{relative} reaches outside the repository"


@pytest.mark.parametrize(
    "source",
    [
        "ROOT = Path(__file__).resolve().parents[2]",
        "ROOT = Path(__file__).parent.parent.parent",
        "ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))",
        "REPO = Path(__file__).resolve().parents[1]\nDATA = REPO.parent / 'x'",
        "DATA = Path(__file__).parent / '..' / '..' / 'x'",
        "DATA = Path(__file__).parent / '../x'",
        "DATA = os.path.join(HERE, '..', 'x')",
        "DATA = Path('/' + 'work') # /" + "work/elsewhere",
        "# reads .." + "/shared/testdata",
    ],
)
def test_the_path_rule_finds_a_path_that_leaves(source: str) -> None:
    assert paths_leaving_root(Path("tests/test_x.py"), source) != []


@pytest.mark.parametrize(
    "source",
    [
        "ROOT = Path(__file__).resolve().parents[1]",
        "ROOT = Path(__file__).parent.parent",
        "DATA = Path(__file__).parent / 'data'",
        "MEMBER = '../../etc/passwd'  # a hostile zip member name is data, not a path we build",
        "TEXT = '…and more...'",
    ],
)
def test_the_path_rule_accepts_paths_inside(source: str) -> None:
    assert paths_leaving_root(Path("tests/test_x.py"), source) == []
