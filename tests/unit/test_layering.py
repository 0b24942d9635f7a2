"""The layering rules, checked on the source: which package may import which,
asyncssh in one module only, the HTTP layer never speaking the agent protocol,
the agent on the standard library alone."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "server"

# What each part of server/ may import from the others (besides the top-level
# modules every part may use: config, errors, records, events, audit, background).
BASE = {"config", "errors", "records", "events", "audit", "background"}
MAY_IMPORT = {
    "remote": BASE,
    "outbound": BASE | {"remote", "store", "auth"},
    "jobs": BASE | {"remote", "outbound", "store"},
    "http": BASE | {"services", "jobs", "remote", "store", "auth", "users", "limits"},
    "cli": BASE | {"http", "services", "remote", "users"},
    "store": BASE,
    "records": set(),
    "errors": set(),
    "config": set(),
}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def imports(path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative ones resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path).split(".")[:-1] if path.name != "__init__.py" else \
        module_name(path).split(".")
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
                found.update(f"{prefix}.{alias.name}" for alias in node.names)
                found.add(prefix)
            elif node.module:
                found.add(node.module)
    return found


def part_of(name: str) -> str | None:
    """The part of server/ a module name is in (its first component below server)."""
    parts = name.split(".")
    if parts[0] != "server" or len(parts) < 2:
        return None
    return parts[1]


def server_files() -> list[Path]:
    return sorted(SERVER.rglob("*.py"))


def broken_rules(files: list[Path]) -> list[str]:
    broken = []
    for path in files:
        mine = part_of(module_name(path))
        for name in imports(path):
            if name.split(".")[0] == "asyncssh" and path != SERVER / "remote" / "ssh.py":
                broken.append(f"{module_name(path)} imports asyncssh (only remote/ssh.py may)")
            theirs = part_of(name)
            if mine is None or theirs is None or theirs == mine or mine not in MAY_IMPORT:
                continue
            if theirs not in MAY_IMPORT[mine] and theirs in {p.stem for p in SERVER.iterdir()}:
                broken.append(f"{module_name(path)} imports {name} ({mine} may not use "
                              f"{theirs})")
    return broken


def http_speaks_agent(files: list[Path]) -> list[str]:
    found = []
    for path in files:
        if part_of(module_name(path)) != "http":
            continue
        for name in imports(path):
            if name.startswith(("server.remote.agent_client", "server.remote.transport",
                                "server.remote.ssh", "server.remote.local")):
                found.append(f"{module_name(path)} imports {name}")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            called = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("request", "open_stream")
            reached = isinstance(node, ast.Attribute) and node.attr in ("agent", "transport")
            if called or reached:
                attr = node.func.attr if called else node.attr  # type: ignore[attr-defined]
                found.append(f"{module_name(path)}:{node.lineno} uses .{attr}")
    return found


def test_each_part_of_the_server_imports_only_what_it_may() -> None:
    assert broken_rules(server_files()) == []


def test_the_http_layer_never_speaks_the_agent_protocol() -> None:
    assert http_speaks_agent(server_files()) == []


def test_the_agent_imports_only_the_standard_library() -> None:
    foreign = []
    for path in sorted((ROOT / "agent").rglob("*.py")):
        for name in imports(path):
            top = name.split(".")[0]
            if top != "agent" and top not in sys.stdlib_module_names:
                foreign.append(f"{module_name(path)} imports {name}")
    assert foreign == []


@pytest.mark.parametrize("line, rule", [
    ("import asyncssh\n", "imports asyncssh"),
    ("from ..jobs.service import JobService\n", "remote may not use jobs"),
])
def test_the_rules_catch_a_broken_one(tmp_path: Path, line: str, rule: str) -> None:
    """A module that breaks a rule is found (written beside the real ones)."""
    intruder = SERVER / "remote" / "_intruder_for_the_test.py"
    intruder.write_text("from __future__ import annotations\n" + line)
    try:
        assert any(rule in item for item in broken_rules(server_files())), rule
    finally:
        intruder.unlink()


def test_the_http_rule_catches_an_agent_request(tmp_path: Path) -> None:
    intruder = SERVER / "http" / "_intruder_for_the_test.py"
    intruder.write_text("async def f(session):\n    return await session.request('ping', {})\n")
    try:
        assert any("uses .request" in item for item in http_speaks_agent(server_files()))
    finally:
        intruder.unlink()
