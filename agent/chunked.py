"""Running a chunked job (agent/chunks.py): its tasks, their retries, the join.

Locally, the job's runner is the coordinator: it starts each task as a runner
of its own (``run-job chunks/NAME``, in the coordinator's process group, so a
cancel of the job stops them all), at most ``spec.chunks.parallel`` at once,
longest first, with the host's cores shared between them; a task that fails
is started again alone (at most twice), the others kept; when every chunk is
complete it joins them.  On Slurm the tasks are one job array and the join a
job that depends on it (agent/slurm.py); both end in :func:`join`.
"""

import os
import signal
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional  # noqa: F401 (type comments)

from . import chunks, jobdir, protocol
from .spec import Spec, VideoOutput

POLL = 0.2
WRITE_INTERVAL = 0.5


class JoinError(Exception):
    """The chunks cannot be joined: what is wrong, for the job's message."""


def describe(task):
    # type: (chunks.Task) -> str
    if task.index is None:
        return "The stills task"
    return "Chunk %d (frames %d-%d)" % (task.index, task.start + 1, task.end)


def join(job_dir, spec):
    # type: (str, Spec) -> List[Dict[str, Any]]
    """Check every task is complete, join each video's chunks into its container,
    move the stills beside them, and return the job's output records (the chunks'
    directories are removed once the outputs are in place)."""
    found = chunks.tasks(job_dir, spec)
    for task in found:
        status = chunks.task_status(task)
        if status.get("status") != protocol.SUCCEEDED:
            raise JoinError("%s is not complete (%s): nothing was joined."
                            % (describe(task), status.get("status")))
    ordered = sorted((task for task in found if task.index is not None),
                     key=lambda task: task.index or 0)
    stills = next((task for task in found if task.index is None), None)
    finals = []  # type: List[str]
    for position, output in enumerate(spec.outputs):
        final = os.path.join(job_dir, "%s.%s" % (output.name, output.extension))
        if not isinstance(output, VideoOutput):
            assert stills is not None
            os.replace(os.path.join(stills.directory, "%s.%s" % (output.name,
                                                                output.extension)), final)
            finals.append(final)
            continue
        extension = chunks.intermediate_extension(output)
        parts = []
        for task in ordered:
            part = os.path.join(task.directory, "%s.%s" % (output.name, extension))
            try:
                count = chunks.count_packets(spec.ffmpeg, part)
            except (OSError, ValueError) as error:
                raise JoinError("%s's %s cannot be read: %s." % (describe(task), output.name,
                                                                error)) from None
            if count != task.end - task.start:
                raise JoinError("%s's %s holds %s of its %d frames: nothing was joined."
                                % (describe(task), output.name, count, task.end - task.start))
            parts.append(part)
        joined = os.path.join(job_dir, "partial.joined.%d.%s" % (
            position, "ivf" if extension == "ivf" else "txt"))
        partial = os.path.join(job_dir, "partial.%d.%s" % (position, output.extension))
        if extension == "ivf":
            chunks.join_ivf(parts, joined)
        else:
            chunks.concat_list(parts, joined)
        argv = chunks.mux_argv(spec.ffmpeg, spec, output, joined, partial)
        with open(os.path.join(job_dir, "join.log"), "ab") as log:
            code = subprocess.call(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        os.unlink(joined)
        if code != 0:
            raise JoinError("ffmpeg could not mux the joined %s (exit code %d); its words "
                            "are in join.log." % (output.name, code))
        count = chunks.count_packets(spec.ffmpeg, partial)
        if count != spec.frames_total:
            raise JoinError("The joined %s holds %s of its %d frames." % (
                output.name, count, spec.frames_total))
        os.replace(partial, final)
        finals.append(final)
    done = []
    for output, final in zip(spec.outputs, finals):
        width, height = output.size()
        done.append({"name": output.name, "kind": output.kind, "path": final,
                     "size": os.path.getsize(final), "content_type": output.content_type,
                     "width": width, "height": height})
    return done


def views(found, nodes=None):
    # type: (List[chunks.Task], Optional[Dict[str, str]]) -> List[Dict[str, Any]]
    """Every task as the job's status shows it, in timeline order (stills last)."""
    shown = [chunks.chunk_view(task, chunks.task_status(task), (nodes or {}).get(task.name))
             for task in found]
    return sorted(shown, key=lambda view: (view["index"] is None, view["index"] or 0))


def finish_joined(job_dir, spec, status):
    # type: (str, Spec, Dict[str, Any]) -> None
    """Join, and write the job's final status either way."""
    status.update({"phase": "joining", "message": "Joining %d chunks." % spec.chunks.count(),
                   "eta_seconds": None, "join_started": True})
    jobdir.write_status(job_dir, status)
    started = time.time()
    before = _children_cpu()
    try:
        outputs = join(job_dir, spec)
    except (JoinError, OSError) as error:
        status["join_seconds"] = round(time.time() - started, 3)
        jobdir.remove_temporaries(job_dir)
        jobdir.finished(status, protocol.FAILED, str(error))
        jobdir.write_status(job_dir, status)
        return
    status["join_seconds"] = round(time.time() - started, 3)
    status["join_cpu_seconds"] = round(_children_cpu() - before, 3)
    status["chunks"] = views(chunks.tasks(job_dir, spec))
    # The encode's CPU: every task's ffmpeg, and the join's.
    status["cpu_seconds"] = round(sum(view.get("cpu_seconds") or 0.0
                                      for view in status["chunks"])
                                  + status["join_cpu_seconds"], 3)
    status["outputs"] = outputs
    status["output"] = outputs[0]
    status["progress"] = 100.0
    status["frames_done"] = spec.frames_total
    jobdir.finished(status, protocol.SUCCEEDED, "Video ready." if spec.outputs[0].kind ==
                    "video" else "Outputs ready.")
    jobdir.write_status(job_dir, status)
    import shutil
    shutil.rmtree(os.path.join(job_dir, chunks.CHUNKS_DIR), ignore_errors=True)


def _children_cpu():
    # type: () -> float
    import resource
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def runner_argv():
    # type: () -> List[str]
    from .__main__ import self_argv
    return self_argv() + ["run-job"]


class ChunkedRunner(object):
    """The local coordinator of a chunked job (its ``run-job``)."""

    def __init__(self, job_dir):
        # type: (str) -> None
        self.job_dir = job_dir
        self.spec = Spec.from_json(jobdir.read_json(os.path.join(job_dir, jobdir.SPEC)))
        self.status = jobdir.read_status(job_dir)
        self.canceled = False
        self.running = {}  # type: Dict[str, subprocess.Popen]
        self._written = 0.0

    def _on_signal(self, signum, frame):
        # type: (int, Any) -> None
        self.canceled = True
        for process in list(self.running.values()):
            if process.poll() is None:
                try:
                    process.send_signal(signal.SIGTERM)
                except OSError:
                    pass

    def run(self):
        # type: () -> int
        from .runner import take_signals
        take_signals(self._on_signal, self.spec.nice)
        spec = self.spec
        cores = os.cpu_count() or 1
        found = chunks.prepare(self.job_dir, spec, chunks.local_threads(spec, cores))
        started = time.time()
        self.status.update({"status": protocol.RUNNING, "phase": "encoding", "pid": os.getpid(),
                            "message": "Encoding %d chunks, %d at once." % (
                                spec.chunks.count(), spec.chunks.parallel or 1)})
        self.status["events"]["started"] = jobdir.now()
        self._show(found, started, force=True)
        try:
            failure = self._run_tasks(found, started)
            if self.canceled:
                self._wait_children()
                jobdir.remove_temporaries(self.job_dir)
                self.status["chunks"] = views(found)
                jobdir.finished(self.status, protocol.CANCELED, "Canceled.")
                jobdir.write_status(self.job_dir, self.status)
            elif failure is not None:
                self.status["chunks"] = views(found)
                jobdir.finished(self.status, protocol.FAILED, failure)
                jobdir.write_status(self.job_dir, self.status)
            else:
                self._show(found, started, force=True)
                finish_joined(self.job_dir, spec, self.status)
                if self.canceled and self.status["status"] != protocol.SUCCEEDED:
                    # The join's ffmpeg was stopped by the cancel: that is no failure.
                    jobdir.remove_temporaries(self.job_dir)
                    jobdir.finished(self.status, protocol.CANCELED, "Canceled.")
                    jobdir.write_status(self.job_dir, self.status)
        except Exception as error:  # the job must end with a status, whatever happened
            self._on_signal(signal.SIGTERM, None)
            self._wait_children()
            jobdir.finished(self.status, protocol.FAILED, "The job failed: %s" % error)
            jobdir.write_status(self.job_dir, self.status)
        return 0 if self.status["status"] == protocol.SUCCEEDED else 1

    def _run_tasks(self, found, started):
        # type: (List[chunks.Task], float) -> Optional[str]
        """Run every task to completion; the failure that ends the job, if any."""
        parallel = max(1, self.spec.chunks.parallel or 1)
        waiting = [task for task in found
                   if chunks.task_status(task).get("status") != protocol.SUCCEEDED]
        by_name = {task.name: task for task in found}
        while (waiting or self.running) and not self.canceled:
            while waiting and len(self.running) < parallel and not self.canceled:
                task = waiting.pop(0)
                self._start(task)
            time.sleep(POLL)
            for name, process in list(self.running.items()):
                if process.poll() is None:
                    continue
                del self.running[name]
                task = by_name[name]
                status = chunks.task_status(task)
                if status.get("status") == protocol.SUCCEEDED or self.canceled:
                    continue
                why = status.get("message") if status.get("status") in \
                    protocol.FINAL_STATES else "its process ended (exit code %s) before it " \
                    "finished" % process.returncode
                if status.get("attempts", 0) >= chunks.MAX_ATTEMPTS:
                    self._stop_all()
                    return "%s failed %d times; the last time: %s" % (
                        describe(task), status.get("attempts", 0), why)
                chunks.reset(task)
                waiting.insert(0, task)  # alone, before the rest: it is the late one
            self._show(found, started)
        return None

    def _start(self, task):
        # type: (chunks.Task) -> None
        status = chunks.task_status(task)
        status["attempts"] = int(status.get("attempts", 0)) + 1
        jobdir.write_status(task.directory, status)
        log = open(os.path.join(task.directory, jobdir.RUNNER_LOG), "ab")
        try:
            # In this process group: a cancel of the job (SIGTERM to the group) stops it.
            self.running[task.name] = subprocess.Popen(
                runner_argv() + [task.directory], stdin=subprocess.DEVNULL, stdout=log,
                stderr=log, close_fds=True)
        finally:
            log.close()

    def _stop_all(self):
        # type: () -> None
        for process in self.running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        self._wait_children()

    def _wait_children(self):
        # type: () -> None
        deadline = time.time() + 5.0
        for process in list(self.running.values()):
            try:
                process.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.running.clear()

    def _show(self, found, started, force=False):
        # type: (List[chunks.Task], float, bool) -> None
        moment = time.time()
        if not force and moment - self._written < WRITE_INTERVAL:
            return
        shown = views(found)
        self.status.update(chunks.summary(self.spec, shown, started))
        self.status["chunks"] = shown
        try:
            jobdir.write_status(self.job_dir, self.status)
        except OSError:
            if force:
                raise
            return
        self._written = moment


def main_join(job_dir):
    # type: (str) -> int
    """``run-join JOB_DIR``: the join of a chunked batch job, after its array."""
    spec = Spec.from_json(jobdir.read_json(os.path.join(job_dir, jobdir.SPEC)))
    status = jobdir.read_status(job_dir)
    if status["status"] in protocol.FINAL_STATES or \
            os.path.exists(os.path.join(job_dir, jobdir.CANCEL_MARK)):
        return 0
    found = chunks.tasks(job_dir, spec)
    missing = [task for task in found
               if chunks.task_status(task).get("status") != protocol.SUCCEEDED]
    if missing:
        # Started before a retry (afterany on an array with a failure): the agent
        # submits another join that waits for it.  Nothing is joined, nothing ends.
        sys.stderr.write("framewire: %s is not complete; not joining yet\n"
                         % describe(missing[0]))
        return 0
    status.update({"status": protocol.RUNNING, "pid": os.getpid()})
    status["chunks"] = views(found)
    status.update(chunks.summary(spec, status["chunks"], None))
    finish_joined(job_dir, spec, status)
    return 0 if status["status"] == protocol.SUCCEEDED else 1


def main_task(job_dir, number):
    # type: (str, int) -> int
    """``run-task JOB_DIR N``: task N of a chunked batch job's array (longest first)."""
    from .runner import Runner

    spec = Spec.from_json(jobdir.read_json(os.path.join(job_dir, jobdir.SPEC)))
    found = chunks.tasks(job_dir, spec)
    if not 0 <= number < len(found):
        sys.stderr.write("framewire: job %s has no task %d\n" % (spec.job, number))
        return 2
    task = found[number]
    if jobdir.read_status(job_dir)["status"] in protocol.FINAL_STATES or \
            os.path.exists(os.path.join(job_dir, jobdir.CANCEL_MARK)):
        return 0  # the job ended (or is being cancelled) while this task waited
    status = chunks.task_status(task)
    if status.get("status") == protocol.SUCCEEDED:
        return 0  # done by an earlier attempt
    if status.get("status") in protocol.FINAL_STATES or status.get("phase") == "stopped" \
            or status.get("status") == protocol.RUNNING:
        attempts = status.get("attempts", 0)  # counted by the agent at submission
        status = chunks.reset(task)
        status["attempts"] = attempts
        jobdir.write_status(task.directory, status)
    return Runner(task.directory).run()
