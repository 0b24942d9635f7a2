"""The job states are defined once, in agent/protocol.py, and documented as defined."""

from __future__ import annotations

import re
from pathlib import Path

from agent import protocol

PROTOCOL_MD = Path(__file__).resolve().parents[3] / "docs" / "protocol.md"


def test_the_states_in_lifecycle_order_and_the_final_ones() -> None:
    assert protocol.JOB_STATES == ("queued", "running", "succeeded", "failed", "canceled")
    assert protocol.FINAL_STATES == protocol.JOB_STATES[2:]


def test_docs_list_the_states_as_protocol_py_defines_them() -> None:
    table = PROTOCOL_MD.read_text().split("**Job states.**", 1)[1].split("\n\n", 2)[1]
    rows = re.findall(r"^\| `([a-z]+)` \| (yes|no) \|", table, re.MULTILINE)
    assert tuple(state for state, _ in rows) == protocol.JOB_STATES
    assert tuple(state for state, final in rows if final == "yes") == protocol.FINAL_STATES


def test_no_other_agent_module_spells_the_final_set() -> None:
    agent_dir = PROTOCOL_MD.parent.parent / "agent"
    spelled = re.compile(r"""["']succeeded["']\s*,\s*["']failed["']""")
    assert [source.name for source in sorted(agent_dir.glob("*.py"))
            if spelled.search(source.read_text())] == []
