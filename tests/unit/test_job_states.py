"""One set of job states: the server's enum, the agent's protocol constants and
docs/protocol.md agree, and the API docs list the same states."""

from __future__ import annotations

import re
from pathlib import Path

from agent import protocol
from server.records import AGENT_STATES, FINAL_STATES, JobState

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_server_and_the_agent_agree_on_the_states() -> None:
    assert tuple(state.value for state in AGENT_STATES) == protocol.JOB_STATES
    assert {state.value for state in FINAL_STATES} == set(protocol.FINAL_STATES) | {"expired"}
    assert [state.value for state in JobState] == [*protocol.JOB_STATES, "expired"]


def test_the_api_docs_list_the_servers_states() -> None:
    table = (DOCS / "jobs.md").read_text().split("## States", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z]+)` \| (?:true|false) \| (?:true|false) \| (yes|no) \|",
                      table, re.MULTILINE)
    assert [state for state, _ in rows] == [state.value for state in JobState]
    assert {state for state, final in rows if final == "yes"} == {
        state.value for state in FINAL_STATES}
