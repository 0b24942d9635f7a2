"""Where a job's work runs: the seam between the job store and a host or scheduler.

The job directory is the whole contract (see ``jobdir``).  Before
:meth:`Executor.submit` the job store has written ``spec.json`` and a
``queued`` ``status.json`` there; the work is ``run-job JOB_DIR`` (the
runner), which reads the spec, keeps ``status.json`` up to date and leaves
its logs and outputs in the same directory, whichever executor started it.

The status file is the source of truth for a job's state.  An executor only
says whether the work is still alive, and ends (``jobdir.abandon``) a job
whose work vanished without writing a final status.  It keeps nothing in
memory that a later agent would need: what it must know about a submitted
job (here the runner's pid; a scheduler's job id) it records in the job
directory, so the executor of a later agent process answers for jobs an
earlier one submitted.  That is all re-discovery takes.
"""

import os
import signal
import subprocess
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple  # noqa: F401 (type comments)

from . import jobdir, protocol
from .jobdir import Status  # noqa: F401 (type comments)

CANCEL_WAIT = 3.0  # seconds a canceled runner has to write its own final status
CANCEL_POLL = 0.05


class Executor(object):
    """Starts jobs' work, says whether it is alive, and stops it."""

    def submit(self, job_dir):
        # type: (str) -> None
        """Start the work of the job in ``job_dir``; OSError if it cannot be started."""
        raise NotImplementedError

    def poll_all(self, jobs):
        # type: (Sequence[Tuple[str, Status]]) -> Dict[str, Status]
        """The current status of each ``(job_dir, status just read)``, by job directory.

        One look for all of them (a scheduler is asked once per call): a job
        that is not final and whose work is gone is ended.  Final statuses come
        back as they are; a job whose directory vanished meanwhile is left out.
        """
        raise NotImplementedError

    def cancel(self, job_dir, status):
        # type: (str, Status) -> Status
        """Stop the work of a job that is not final (the job store has marked the
        cancel in its directory) and return the job's final status."""
        raise NotImplementedError

    def poll(self, job_dir, status):
        # type: (str, Status) -> Status
        """:meth:`poll_all` for one job; unknown-job if its directory vanished."""
        current = self.poll_all([(job_dir, status)]).get(job_dir)
        if current is None:
            raise protocol.AgentError(protocol.UNKNOWN_JOB, "Unknown video job.",
                                      {"job": os.path.basename(job_dir)})
        return current


class LocalExecutor(Executor):
    """The runner as a detached process on the agent's own host.

    ``runner_argv + [job_dir]`` starts in a session of its own (so it is its
    own process-group leader and outlives the agent and its SSH connection),
    stdin from /dev/null, stdout and stderr appended to ``runner.log``; a
    thread reaps it.  Its pid (also its process group id) goes into
    ``status.json``, where the runner writes it too.  The work is alive while
    that pid is (EPERM counts as alive).  Cancel sends the group SIGTERM, waits
    up to :data:`CANCEL_WAIT` for the runner's final status, then SIGKILLs it.
    """

    def __init__(self, runner_argv):
        # type: (List[str]) -> None
        self.runner_argv = runner_argv

    def submit(self, job_dir):
        # type: (str) -> None
        log = open(os.path.join(job_dir, jobdir.RUNNER_LOG), "ab")
        try:
            runner = subprocess.Popen(self.runner_argv + [job_dir], stdin=subprocess.DEVNULL,
                                      stdout=log, stderr=log, start_new_session=True,
                                      close_fds=True)
        finally:
            log.close()
        # Reap the runner when it ends so it never lingers as a zombie.
        threading.Thread(target=runner.wait, daemon=True).start()
        self._record_pid(job_dir, runner.pid)

    @staticmethod
    def _record_pid(job_dir, pid):
        # type: (str, int) -> None
        """Record the runner's pid unless the runner already wrote its own status."""
        current = jobdir.read_json(os.path.join(job_dir, jobdir.STATUS))
        if current.get("pid") is None:
            current["pid"] = pid
            jobdir.write_status(job_dir, current)

    def poll_all(self, jobs):
        # type: (Sequence[Tuple[str, Status]]) -> Dict[str, Status]
        current = {}  # type: Dict[str, Status]
        for job_dir, status in jobs:
            if status["status"] not in protocol.FINAL_STATES and not alive(status.get("pid")):
                # Read again: the runner may have finished between the two looks.
                try:
                    status = jobdir.read_status(job_dir)
                except protocol.AgentError:
                    continue
                if status["status"] not in protocol.FINAL_STATES \
                        and not alive(status.get("pid")):
                    # Whatever the runner left in its group (a chunked job's tasks) goes too.
                    signal_group(status.get("pid"), signal.SIGKILL)
                    status = jobdir.abandon(job_dir, status)
            current[job_dir] = status
        return current

    def cancel(self, job_dir, status):
        # type: (str, Status) -> Status
        pid = status.get("pid")
        signal_group(pid, signal.SIGTERM)
        deadline = time.time() + CANCEL_WAIT
        while time.time() < deadline:
            status = self.poll(job_dir, jobdir.read_status(job_dir))
            if status["status"] in protocol.FINAL_STATES:
                return status
            time.sleep(CANCEL_POLL)
        signal_group(pid, signal.SIGKILL)
        status = jobdir.read_json(os.path.join(job_dir, jobdir.STATUS))
        return jobdir.end_job(job_dir, status, protocol.CANCELED, "Canceled.")


def alive(pid):
    # type: (Optional[int]) -> bool
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_group(pid, signum):
    # type: (Optional[int], int) -> None
    """Signal the process group ``pid`` leads, if any is left."""
    if pid:
        try:
            os.killpg(pid, signum)
        except OSError:
            pass
