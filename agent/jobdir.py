"""A job's directory: the files in it and the status the runner keeps there.

Every job has one directory, ``<work_dir>/jobs/<job>/``, and it is the
source of truth: the agent writes ``spec.json`` and a queued ``status.json``,
the runner (wherever an executor starts it) rewrites ``status.json``
atomically as the job goes on and leaves its logs and outputs beside it.
Anyone who can read the directory (a later agent too) knows the job.

``status.json`` is the protocol's job status (docs/protocol.md, section 7),
a JSON object at the edge, so it stays a ``Status`` dict here; the
functions below build and end it in one place.
"""

import json
import os
import shutil
import time
from typing import Any, Dict  # noqa: F401 (type comments)

from . import protocol
from .spec import Spec  # noqa: F401 (type comments)

SPEC = "spec.json"
STATUS = "status.json"
RUNNER_LOG = "runner.log"
SCHEDULER = "scheduler.json"  # what a batch scheduler last said of the job
CANCEL_MARK = "cancel-requested"  # a cancel is in progress: a job dying now was canceled

Status = Dict[str, Any]


def now():
    # type: () -> str
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write_json(path, data):
    # type: (str, Dict[str, Any]) -> None
    """Replace ``path`` atomically, so a reader never sees half a file."""
    temp = "%s.%d.tmp" % (path, os.getpid())
    with open(temp, "w") as handle:
        json.dump(data, handle)
    os.replace(temp, path)


def read_json(path):
    # type: (str) -> Dict[str, Any]
    with open(path) as handle:
        return json.load(handle)


def read_status(job_dir):
    # type: (str) -> Status
    """The job's status, or unknown-job when it has no readable status file."""
    try:
        return read_json(os.path.join(job_dir, STATUS))
    except (OSError, ValueError):
        raise protocol.AgentError(protocol.UNKNOWN_JOB, "Unknown video job.",
                                  {"job": os.path.basename(job_dir)}) from None


def write_status(job_dir, status):
    # type: (str, Status) -> None
    write_json(os.path.join(job_dir, STATUS), status)


def queued_status(spec):
    # type: (Spec) -> Status
    """The status of a job that has not started: what the agent writes first."""
    return {
        "id": spec.job,
        "status": protocol.QUEUED,
        "phase": "queued",
        "message": "Queued.",
        "progress": 0.0,
        "frames_done": 0,
        "frames_total": spec.frames_total,
        "eta_seconds": None,
        "events": {"queued": now(), "started": None, "completed": None},
        "content_type": spec.outputs[0].content_type,
        "width": spec.canvas.width,
        "height": spec.canvas.height,
        "frame_rate": spec.frame_rate,
        "notes": spec.notes,
        "executor": spec.placement.kind,
        "chunking": {"chunks": spec.chunks.count(), "requested": spec.chunks.requested,
                     "parallel": spec.chunks.parallel, "note": spec.chunks.note},
        "chunks": [],
        "output": None,
        "outputs": [],
        "preview": None,
        "pid": None,
    }


def finished(status, state, message):
    # type: (Status, str, str) -> None
    """Make ``status`` final (``state`` one of protocol.FINAL_STATES), completed now."""
    status.update({"status": state, "phase": "done", "message": message,
                   "eta_seconds": None, "preview": None})
    status["events"]["completed"] = now()


def end_job(job_dir, status, state, message):
    # type: (str, Status, str, str) -> Status
    """Write a final status for a job whose runner can no longer write it."""
    finished(status, state, message)
    write_status(job_dir, status)
    remove_temporaries(job_dir)
    return status


def abandon(job_dir, status):
    # type: (str, Status) -> Status
    """End a job whose work is gone without a final status: canceled if a cancel
    was under way (it killed the work before it could say so), else failed."""
    if os.path.exists(os.path.join(job_dir, CANCEL_MARK)):
        return end_job(job_dir, status, protocol.CANCELED, "Canceled.")
    return end_job(job_dir, status, protocol.FAILED, "The encoder process ended unexpectedly.")


def mark_cancel(job_dir):
    # type: (str) -> None
    open(os.path.join(job_dir, CANCEL_MARK), "w").close()


def remove_temporaries(job_dir):
    # type: (str) -> None
    """Remove the frame links and any partial output (the preview too) of a job
    that ended."""
    shutil.rmtree(os.path.join(job_dir, "frames"), ignore_errors=True)
    for name in os.listdir(job_dir):
        if name.startswith("partial.") or name.endswith(".tmp") or name == CANCEL_MARK:
            try:
                os.unlink(os.path.join(job_dir, name))
            except OSError:
                pass
