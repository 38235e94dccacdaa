"""The repository's code rules, checked on the source: no library file over 450 lines, no library
function over 100, and no reaching into another object's private names (what another module needs
is its public API; ruff's SLF001)."""

import ast
import pathlib

from tests.fixtures import REPO

LIBRARY = sorted([*(REPO / "flan_jax").rglob("*.py"), *(REPO / "tasks").rglob("*.py")])
CHECKED = sorted([*LIBRARY, *(REPO / "tests").rglob("*.py")])
# owners whose underscored names are meant to be used: the object itself, and os._exit (the
# documented way out of a forked or signalled process)
OWN = {"self", "cls", "mcs"}
ALLOWED = {("os", "_exit")}


def _private_accesses(path: pathlib.Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            found += [f"{path.name}:{node.lineno} import {a.name}" for a in node.names
                      if a.name.startswith("_") and not a.name.startswith("__")]
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        if not name.startswith("_") or (name.startswith("__") and name.endswith("__")):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and (owner.id in OWN or (owner.id, name) in ALLOWED):
            continue
        if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) \
                and owner.func.id == "super":
            continue
        found.append(f"{path.name}:{node.lineno} .{name}")
    return found


def test_the_checker_sees_a_private_access(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nx = other._hidden\nself._mine = os._exit\nsuper()._base()\n"
                      "from other import _secret, public\nfrom __future__ import annotations\n")
    assert sorted(_private_accesses(sample)) == ["sample.py:2 ._hidden",
                                                 "sample.py:5 import _secret"]


def test_no_module_reaches_into_another_ones_private_names():
    assert [a for path in CHECKED for a in _private_accesses(path)] == []


def test_library_files_and_functions_stay_short():
    long_files, long_functions = [], []
    for path in LIBRARY:
        text = path.read_text()
        if text.count("\n") > 450:
            long_files.append(str(path.relative_to(REPO)))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 100:
                    long_functions.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}")
    assert (long_files, long_functions) == ([], [])
