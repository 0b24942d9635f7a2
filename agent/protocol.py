"""Wire format of the agent protocol: JSON lines on stdin/stdout.

The normative description lives in ``docs/protocol.md``.  Every error the
agent reports carries one of the codes below; the server maps them to HTTP.
"""

import json
import re
import sys
import threading
from typing import Any, Dict, Optional  # noqa: F401 (type comments)

# The agent prints this (followed by a space and the nonce it was started
# with) before anything else, so junk printed by login scripts is skipped.
MARKER = "FRAMEWIRE-AGENT"
STREAM_MARKER = "FRAMEWIRE-STREAM"

# Job states, as ``status.json`` and job events spell them (stable: the server
# and docs/protocol.md list the same).  ``expired`` exists only on the server.
QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELED = "canceled"
JOB_STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELED)  # in lifecycle order
FINAL_STATES = (SUCCEEDED, FAILED, CANCELED)  # a job in one of these never changes again

# Error codes (stable: the server and the tests match on them).
BAD_REQUEST = "bad-request"
UNKNOWN_COMMAND = "unknown-command"
NOT_FOUND = "not-found"
IS_DIRECTORY = "is-directory"
ACCESS_DENIED = "access-denied"
NOT_AN_IMAGE = "not-an-image"
TRUNCATED_IMAGE = "truncated-image"
BAD_IMAGES = "bad-images"
NO_FFMPEG = "no-ffmpeg"
NO_ENCODER = "no-encoder"
MISSING_FILTER = "missing-filter"
UNKNOWN_JOB = "unknown-job"
JOB_EXISTS = "job-exists"
UNDECODABLE_IMAGE = "undecodable-image"
NO_SLURM = "no-slurm"
SLURM_REFUSED = "slurm-refused"
NODE_LOCAL_WORK_DIR = "node-local-work-dir"
NO_SPACE = "no-space"
INTERNAL = "internal"


_PYTHON_WORDS = re.compile(r"\bgot (None|True|False)\b")
_JSON_WORDS = {"None": "null", "True": "true", "False": "false"}


class AgentError(Exception):
    """A failure the agent reports to the server as a protocol error."""

    def __init__(self, code, message, details=None):
        # type: (str, str, Optional[Dict[str, Any]]) -> None
        if code == BAD_REQUEST:  # show values the way the JSON request wrote them
            message = _PYTHON_WORDS.sub(lambda match: "got " + _JSON_WORDS[match.group(1)],
                                        message)
        Exception.__init__(self, message)
        self.code = code
        self.message = message
        self.details = details or {}

    def to_json(self):
        # type: () -> Dict[str, Any]
        return {"code": self.code, "message": self.message, "details": self.details}


def encode(message):
    # type: (Dict[str, Any]) -> bytes
    """One protocol line: compact JSON, ASCII-safe, newline-terminated."""
    return (json.dumps(message, separators=(",", ":"), ensure_ascii=True) + "\n").encode("ascii")


class LineWriter(object):
    """Writes protocol lines to stdout from any thread, one line at a time."""

    def __init__(self, stream=None):
        # type: (Any) -> None
        self._stream = stream if stream is not None else sys.stdout.buffer
        self._lock = threading.Lock()

    def send(self, message):
        # type: (Dict[str, Any]) -> None
        data = encode(message)
        with self._lock:
            self._stream.write(data)
            self._stream.flush()
