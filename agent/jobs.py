"""Video jobs on the remote host: one directory each, the source of truth.

A job directory (``jobdir``) holds ``spec.json`` (what to encode),
``status.json`` (rewritten atomically by the runner), the runner's and
ffmpeg's logs and, once done, the outputs.  Where the runner runs is the
executor's business (``executors``); the store creates, inspects, cancels
and deletes jobs through their directories only, so a restarted agent finds
every job again and neither a dropped SSH link nor a new agent loses one.
"""

import errno
import os
import re
import shutil
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple  # noqa: F401

from . import chunks, ffmpeg, jobdir, options, protocol
from .executors import Executor  # noqa: F401 (type comments)
from .jobdir import Status  # noqa: F401 (type comments)

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
# Directories on a node's own disk (the agent's fallback work directory is one).
NODE_LOCAL = ("/tmp", "/var/tmp", "/dev/shm", "/run")
# A status file's mtime (ns), size and inode, and the scheduler file's mtime (ns).
Stamp = Tuple[int, int, int, int]


class JobStore(object):
    """Creates, inspects, cancels and deletes the job directories under a work dir."""

    def __init__(self, work_dir, executors, ffmpeg_info, nice=0):
        # type: (str, Dict[str, Executor], Dict[str, Any], int) -> None
        self.root = os.path.join(work_dir, "jobs")
        self.executors = executors  # by placement kind: "local", and "slurm" where it is
        self.ffmpeg = ffmpeg_info
        self.nice = nice
        self._kinds = {}  # type: Dict[str, str]  # job directory -> its placement's kind
        self.partitions = lambda: []  # type: Callable[[], List[Dict[str, Any]]]  # Slurm's
        os.makedirs(self.root, mode=0o700, exist_ok=True)

    def executor_of(self, job_dir):
        # type: (str) -> Executor
        """The executor of a job (its spec says which; a later agent reads it too)."""
        kind = self._kinds.get(job_dir)
        if kind is None:
            try:
                data = jobdir.read_json(os.path.join(job_dir, jobdir.SPEC))
            except (OSError, ValueError):
                raise protocol.AgentError(protocol.UNKNOWN_JOB, "Unknown video job.",
                                          {"job": os.path.basename(job_dir)}) from None
            kind = (data.get("placement") or {}).get("kind", "local")
            self._kinds[job_dir] = kind
        executor = self.executors.get(kind)
        if executor is None:  # a Slurm job, and this agent found no Slurm
            raise protocol.AgentError(
                protocol.NO_SLURM, "Job %s runs under Slurm, and this agent finds no Slurm "
                "commands." % os.path.basename(job_dir),
                {"hint": "Give the host's profile the set-up that makes sbatch and squeue "
                         "available (such as [\"module\", \"load\", \"slurm\"])."})
        return executor

    def directory(self, job_id):
        # type: (Any) -> str
        if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
            raise protocol.AgentError(protocol.BAD_REQUEST,
                                      "job must be a 32-digit lowercase hex id.",
                                      {"field": "job"})
        return os.path.join(self.root, job_id)

    # -- create ---------------------------------------------------------

    def create(self, args):
        # type: (Dict[str, Any]) -> Status
        job_dir = self.directory(args.get("job"))
        ffmpeg.require(self.ffmpeg)
        spec = options.build_spec(args, self.ffmpeg)
        spec.job = os.path.basename(job_dir)
        spec.ffmpeg = self.ffmpeg["path"]
        spec.ffmpeg_fps_mode = bool(self.ffmpeg.get("fps_mode"))
        executor = self.executors.get(spec.placement.kind)
        if executor is None:
            raise protocol.AgentError(
                protocol.NO_SLURM, "This host has no Slurm: sbatch, squeue, scontrol, "
                "scancel and sinfo were not all found.", {"field": "executor", "hint":
                "Use the local executor, or give the host's profile the set-up that makes "
                "Slurm's commands available (such as [\"module\", \"load\", \"slurm\"])."})
        if spec.placement.kind == "slurm":
            self._shared_or_refuse()
        # A batch job's priority is Slurm's business; a local one yields to the agent.
        spec.nice = self.nice if spec.placement.kind == "local" else 0
        if spec.placement.kind == "slurm" and spec.placement.cpus and not spec.threads:
            spec.threads = spec.placement.cpus  # what Slurm gave it, not the node's cores
        spec.chunks = chunks.plan(spec, chunks.requested(args.get("chunks")),
                                  os.cpu_count() or 1, spec.placement.parallel,
                                  self._nodes(spec.placement.partition))
        if spec.chunks.note:
            spec.notes.append(spec.chunks.note)
        try:
            os.mkdir(job_dir, 0o700)
        except FileExistsError:
            raise protocol.AgentError(protocol.JOB_EXISTS, "Job %s already exists."
                                      % spec.job, {"field": "job"}) from None
        try:
            jobdir.write_json(os.path.join(job_dir, jobdir.SPEC), spec.to_json())
            jobdir.write_status(job_dir, jobdir.queued_status(spec))
            self._kinds[job_dir] = spec.placement.kind
            executor.submit(job_dir)
        except protocol.AgentError:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise
        except OSError as error:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise protocol.AgentError(
                protocol.NO_SPACE if error.errno == errno.ENOSPC else protocol.INTERNAL,
                "Could not start the job in %s: %s" % (self.root, error.strerror),
                {"hint": "Free space in the agent's work directory on the remote host."
                 if error.errno == errno.ENOSPC else "Check the agent's work directory."}) \
                from None
        return self.status({"job": spec.job})

    # -- inspect and control ---------------------------------------------

    def _nodes(self, partition):
        # type: (Optional[str]) -> Optional[int]
        """How many nodes a Slurm partition (None: the default one) has."""
        for item in self.partitions():
            if item.get("name") == partition or partition is None and item.get("default"):
                return item.get("nodes")
        return None

    def _shared_or_refuse(self):
        # type: () -> None
        """Compute nodes must see the job directory: refuse a node-local one."""
        where = os.path.realpath(self.root)
        if any(where == place or where.startswith(place + "/") for place in NODE_LOCAL):
            raise protocol.AgentError(
                protocol.NODE_LOCAL_WORK_DIR, "The agent's work directory %s is on this "
                "node's own disk: Slurm's compute nodes cannot see the job's files."
                % os.path.dirname(where), {"field": "executor", "hint": "Set work_dir in "
                "this host's profile to a filesystem the nodes share (your home, or a "
                "scratch directory), or use the local executor."})

    def status(self, args):
        # type: (Dict[str, Any]) -> Status
        """The job's status, after the executor says whether its work is alive."""
        job_dir = self.directory(args.get("job"))
        return self.executor_of(job_dir).poll(job_dir, jobdir.read_status(job_dir))

    def statuses(self, job_ids):
        # type: (Sequence[str]) -> Dict[str, Status]
        """:meth:`status` of many jobs, each executor asked once for all of its jobs;
        jobs without a readable status are left out."""
        by_executor = {}  # type: Dict[int, Tuple[Executor, List[Tuple[str, Status]]]]
        for job_id in job_ids:
            job_dir = os.path.join(self.root, job_id)
            try:
                executor = self.executor_of(job_dir)
                found = (job_dir, jobdir.read_status(job_dir))
            except protocol.AgentError:
                continue
            by_executor.setdefault(id(executor), (executor, []))[1].append(found)
        current = {}  # type: Dict[str, Status]
        for executor, jobs in by_executor.values():
            for job_dir, status in executor.poll_all(jobs).items():
                current[os.path.basename(job_dir)] = status
        return current

    def cancel(self, args):
        # type: (Dict[str, Any]) -> Status
        status = self.status(args)
        if status["status"] in protocol.FINAL_STATES:
            return status
        job_dir = self.directory(args.get("job"))
        jobdir.mark_cancel(job_dir)
        return self.executor_of(job_dir).cancel(job_dir, status)

    def delete(self, args):
        # type: (Dict[str, Any]) -> Dict[str, Any]
        status = self.cancel(args)
        shutil.rmtree(self.directory(args.get("job")), ignore_errors=True)
        return {"job": status["id"], "deleted": True}


class JobWatcher(object):
    """Pushes a job event whenever a watched job's status changes.

    The server answers status requests from these events alone, so work that
    died without a word must show too: every ``liveness`` seconds a job whose
    file did not change is looked at again (which ends a job whose work is
    gone, and so changes the file).  The jobs due for a look are asked about
    together, so the executor is asked once per interval.
    """

    def __init__(self, store, push, interval=0.2, liveness=2.0):
        # type: (JobStore, Callable[[Dict[str, Any]], None], float, float) -> None
        self.store = store
        self.push = push
        self.interval = interval
        self.liveness = liveness
        self._seen = {}  # type: Dict[str, Optional[Stamp]]
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
            due = []  # type: List[Tuple[str, Optional[Stamp], Stamp]]
            for job_id, last in watched:
                path = os.path.join(self.store.root, job_id, jobdir.STATUS)
                try:
                    info = os.stat(path)
                except OSError:
                    with self._lock:
                        self._seen.pop(job_id, None)
                    continue
                try:  # what a scheduler said of it (the pending reason) is news too
                    told = os.stat(os.path.join(self.store.root, job_id,
                                                jobdir.SCHEDULER)).st_mtime_ns
                except OSError:
                    told = 0
                stamp = (info.st_mtime_ns, info.st_size, info.st_ino, told)
                moment = time.time()
                if stamp == last and moment - self._checked.get(job_id, 0.0) < self.liveness:
                    continue
                self._checked[job_id] = moment
                due.append((job_id, last, stamp))
            if not due:
                continue
            statuses = self.store.statuses([job_id for job_id, _, _ in due])
            for job_id, last, stamp in due:
                status = statuses.get(job_id)
                if status is None:
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
