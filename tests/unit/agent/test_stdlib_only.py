"""agent/ imports nothing but the standard library and itself."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import agent

AGENT_DIR = Path(agent.__file__).parent


def imported_modules(source: Path) -> set[str]:
    """The top-level modules a file imports (``agent`` for its relative imports)."""
    found = set()
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add("agent" if node.level else (node.module or "").split(".")[0])
    return found


def test_every_agent_module_imports_only_the_standard_library() -> None:
    sources = sorted(AGENT_DIR.glob("*.py"))
    assert {"spec.py", "executors.py", "filtergraph.py", "jobdir.py"} <= {
        source.name for source in sources}
    allowed = set(sys.stdlib_module_names) | {"agent"}
    outside = {source.name: sorted(imported_modules(source) - allowed) for source in sources}
    assert {name: modules for name, modules in outside.items() if modules} == {}


def test_the_scan_sees_third_party_imports(tmp_path: Path) -> None:
    source = tmp_path / "bad.py"
    source.write_text("import os\nfrom PIL import Image\nfrom . import spec\n"
                      "def f():\n    import requests.adapters\n")
    assert imported_modules(source) == {"os", "PIL", "agent", "requests"}

