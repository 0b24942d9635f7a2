"""Video jobs on the remote host: one directory each, the source of truth.

A job directory holds ``spec.json`` (what to encode), ``status.json``
(rewritten atomically by the detached runner), the runner's and ffmpeg's logs
and, once done, the output.  A restarted agent finds every job again from its
directory, so neither a dropped SSH link nor a new agent loses one.
"""

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from typing import Any, Callable, Dict, List, Optional  # noqa: F401 (type comments)

from . import ffmpeg, options, protocol
from .spec import Spec  # noqa: F401 (type comments)

CANCEL_MARK = "cancel-requested"
CANCEL_WAIT = 3.0  # seconds a canceled runner has to write its own final status
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")


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


class JobStore(object):
    """Creates, inspects, cancels and deletes the job directories under a work dir."""

    def __init__(self, work_dir, runner_argv, ffmpeg_info, nice=0):
        # type: (str, List[str], Dict[str, Any], int) -> None
        self.root = os.path.join(work_dir, "jobs")
        self.runner_argv = runner_argv
        self.ffmpeg = ffmpeg_info
        self.nice = nice
        os.makedirs(self.root, mode=0o700, exist_ok=True)

    def directory(self, job_id):
        # type: (Any) -> str
        if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
            raise protocol.AgentError(protocol.BAD_REQUEST,
                                      "job must be a 32-digit lowercase hex id.",
                                      {"field": "job"})
        return os.path.join(self.root, job_id)

    # -- create ---------------------------------------------------------

    def create(self, args):
        # type: (Dict[str, Any]) -> Dict[str, Any]
        job_dir = self.directory(args.get("job"))
        ffmpeg.require(self.ffmpeg)
        spec = options.build_spec(args, self.ffmpeg)
        spec.job = os.path.basename(job_dir)
        spec.ffmpeg = self.ffmpeg["path"]
        spec.ffmpeg_fps_mode = bool(self.ffmpeg.get("fps_mode"))
        spec.nice = self.nice
        try:
            os.mkdir(job_dir, 0o700)
        except FileExistsError:
            raise protocol.AgentError(protocol.JOB_EXISTS, "Job %s already exists."
                                      % spec.job, {"field": "job"}) from None
        try:
            self._start(job_dir, spec)
        except OSError as error:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise protocol.AgentError(
                protocol.NO_SPACE if error.errno == errno.ENOSPC else protocol.INTERNAL,
                "Could not start the job in %s: %s" % (self.root, error.strerror),
                {"hint": "Free space in the agent's work directory on the remote host."
                 if error.errno == errno.ENOSPC else "Check the agent's work directory."}) \
                from None
        return self.status({"job": spec.job})

    def _start(self, job_dir, spec):
        # type: (str, Spec) -> None
        """Write the job's files and start its detached runner."""
        write_json(os.path.join(job_dir, "spec.json"), spec.to_json())
        first = spec.outputs[0]
        status = {
            "id": spec.job,
            "status": protocol.QUEUED,
            "phase": "queued",
            "message": "Queued.",
            "progress": 0.0,
            "frames_done": 0,
            "frames_total": spec.frames_total,
            "eta_seconds": None,
            "events": {"queued": now(), "started": None, "completed": None},
            "content_type": first.content_type,
            "width": spec.canvas.width,
            "height": spec.canvas.height,
            "frame_rate": spec.frame_rate,
            "notes": spec.notes,
            "output": None,
            "outputs": [],
            "pid": None,
        }
        write_json(os.path.join(job_dir, "status.json"), status)
        log = open(os.path.join(job_dir, "runner.log"), "ab")
        try:
            runner = subprocess.Popen(self.runner_argv + [job_dir], stdin=subprocess.DEVNULL,
                                      stdout=log, stderr=log, start_new_session=True,
                                      close_fds=True)
        finally:
            log.close()
        # Reap the runner when it ends so it never lingers as a zombie.
        threading.Thread(target=runner.wait, daemon=True).start()
        self._merge_pid(job_dir, runner.pid)

    def _merge_pid(self, job_dir, pid):
        # type: (str, int) -> None
        """Record the runner's pid unless the runner already wrote its own status."""
        path = os.path.join(job_dir, "status.json")
        current = read_json(path)
        if current.get("pid") is None:
            current["pid"] = pid
            write_json(path, current)

    # -- inspect and control ---------------------------------------------

    def status(self, args):
        # type: (Dict[str, Any]) -> Dict[str, Any]
        job_dir = self.directory(args.get("job"))
        path = os.path.join(job_dir, "status.json")
        try:
            status = read_json(path)
        except (OSError, ValueError):
            raise protocol.AgentError(protocol.UNKNOWN_JOB, "Unknown video job.",
                                      {"job": args.get("job")}) from None
        if status["status"] not in protocol.FINAL_STATES and not alive(status.get("pid")):
            # Re-read: the runner may have finished between the two looks.
            status = read_json(path)
            if status["status"] not in protocol.FINAL_STATES and not alive(status.get("pid")):
                status = self._finish_abandoned(job_dir, status)
        return status

    def _finish_abandoned(self, job_dir, status):
        # type: (str, Dict[str, Any]) -> Dict[str, Any]
        if os.path.exists(os.path.join(job_dir, CANCEL_MARK)):
            # Killed by a cancel before it could write its own status.
            return end_job(job_dir, status, protocol.CANCELED, "Canceled.")
        return end_job(job_dir, status, protocol.FAILED, "The encoder process ended unexpectedly.")

    def cancel(self, args):
        # type: (Dict[str, Any]) -> Dict[str, Any]
        status = self.status(args)
        if status["status"] in protocol.FINAL_STATES:
            return status
        job_dir = self.directory(args.get("job"))
        open(os.path.join(job_dir, CANCEL_MARK), "w").close()
        pid = status.get("pid")
        if pid:
            try:
                os.killpg(pid, signal.SIGTERM)
            except OSError:
                pass
        deadline = time.time() + CANCEL_WAIT
        while time.time() < deadline:
            status = self.status(args)
            if status["status"] in protocol.FINAL_STATES:
                return status
            time.sleep(0.05)
        if pid:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        status = read_json(os.path.join(job_dir, "status.json"))
        return end_job(job_dir, status, protocol.CANCELED, "Canceled.")

    def delete(self, args):
        # type: (Dict[str, Any]) -> Dict[str, Any]
        status = self.cancel(args)
        shutil.rmtree(self.directory(args.get("job")), ignore_errors=True)
        return {"job": status["id"], "deleted": True}


def end_job(job_dir, status, state, message):
    # type: (str, Dict[str, Any], str, str) -> Dict[str, Any]
    """Write a final status for a job whose runner can no longer write it."""
    status.update({"status": state, "phase": "done", "message": message,
                   "eta_seconds": None})
    status["events"]["completed"] = now()
    write_json(os.path.join(job_dir, "status.json"), status)
    remove_temporaries(job_dir)
    return status


def remove_temporaries(job_dir):
    # type: (str) -> None
    """Remove the frame links and any partial output of a job that ended."""
    shutil.rmtree(os.path.join(job_dir, "frames"), ignore_errors=True)
    for name in os.listdir(job_dir):
        if name.startswith("partial.") or name.endswith(".tmp") or name == CANCEL_MARK:
            try:
                os.unlink(os.path.join(job_dir, name))
            except OSError:
                pass


class JobWatcher(object):
    """Pushes a job event whenever a watched job's status changes.

    The server answers status requests from these events alone, so a runner
    that died without a word must show too: every ``liveness`` seconds a job
    whose file did not change is looked at again (which ends a job whose
    runner is gone, and so changes the file).
    """

    def __init__(self, store, push, interval=0.2, liveness=2.0):
        # type: (JobStore, Callable[[Dict[str, Any]], None], float, float) -> None
        self.store = store
        self.push = push
        self.interval = interval
        self.liveness = liveness
        self._seen = {}  # type: Dict[str, Any]
        self._checked = {}  # type: Dict[str, float]
        self._lock = threading.Lock()
        thread = threading.Thread(target=self._run, name="job-watcher", daemon=True)
        thread.start()

    def watch(self, job_id):
        # type: (str) -> None
        with self._lock:
            self._seen.setdefault(job_id, None)

    def _run(self):
        # type: () -> None
        while True:
            time.sleep(self.interval)
            with self._lock:
                watched = list(self._seen.items())
            for job_id, last in watched:
                path = os.path.join(self.store.root, job_id, "status.json")
                try:
                    info = os.stat(path)
                    stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
                except OSError:
                    with self._lock:
                        self._seen.pop(job_id, None)
                    continue
                moment = time.time()
                if stamp == last and moment - self._checked.get(job_id, 0.0) < self.liveness:
                    continue
                self._checked[job_id] = moment
                try:
                    status = self.store.status({"job": job_id})
                except protocol.AgentError:
                    continue
                if stamp == last and status["status"] not in protocol.FINAL_STATES:
                    continue  # alive and unchanged: nothing to say
                self.push({"event": "job", "data": status})
                with self._lock:
                    if status["status"] in protocol.FINAL_STATES:
                        self._seen.pop(job_id, None)
                        self._checked.pop(job_id, None)
                    else:
                        self._seen[job_id] = stamp
