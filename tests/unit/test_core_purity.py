"""The protocol core does no I/O, reads no clock and draws no randomness of
its own (DESIGN.md): checked on the modules' imports and calls."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "userppp"
CORE = ["fsm.py", "wire.py", "link.py", "events.py", "exitcodes.py"] + \
    [f"protocols/{p.name}" for p in (ROOT / "protocols").glob("*.py")]
FORBIDDEN_MODULES = {"os", "time", "socket", "select", "selectors", "asyncio",
                     "subprocess", "random", "threading", "signal", "datetime",
                     "io", "pathlib", "secrets"}
FORBIDDEN_CALLS = {"open", "print", "input"}


@pytest.mark.parametrize("module", sorted(CORE))
def test_core_module_is_sans_io(module):
    tree = ast.parse((ROOT / module).read_text())
    type_checking_only = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for inner in ast.walk(node):
                type_checking_only.add(id(inner))
    for node in ast.walk(tree):
        if id(node) in type_checking_only:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                assert alias.name.split(".")[0] not in FORBIDDEN_MODULES, (module, alias.name)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            assert (node.module or "").split(".")[0] not in FORBIDDEN_MODULES, (module, node.module)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in FORBIDDEN_CALLS, (module, node.func.id, node.lineno)
