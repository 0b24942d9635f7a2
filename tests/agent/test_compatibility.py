"""The agent runs on the remote host's own python3: 3.6 or newer, stdlib only."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import agent

AGENT_DIR = Path(agent.__file__).parent
STDLIB = set(sys.stdlib_module_names)


def vermin(path: Path) -> subprocess.CompletedProcess[str]:
    command = shutil.which("vermin") or str(Path(sys.executable).parent / "vermin")
    return subprocess.run([command, "--target=3.6-", "--violations", "--no-tips",
                           "--eval-annotations", str(path)], capture_output=True, text=True)


def test_agent_sources_need_no_more_than_python_3_6() -> None:
    result = vermin(AGENT_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_version_check_catches_newer_syntax(tmp_path: Path) -> None:
    newer = tmp_path / "newer.py"
    newer.write_text("import sys\nif (n := len(sys.argv)) > 1:\n    print(f'{n=}')\n")
    assert vermin(newer).returncode != 0


def test_agent_imports_only_the_standard_library() -> None:
    for source in AGENT_DIR.glob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in STDLIB, f"{source.name} imports {name}"
