"""Slurm: what the cluster offers this user (discovery), and the executor that runs
jobs' work on its compute nodes through the batch scheduler.

The job directory stays the whole contract.  The executor writes the batch
script (``job.sbatch``: the host's set-up commands, then the same runner the
local executor starts) and records the Slurm job id in ``slurm.json`` at once;
the runner, on a compute node, keeps ``status.json`` on the shared filesystem.
While Slurm holds the job the executor says so in ``scheduler.json`` (state,
pending reason in words, expected start, node), which the status carries as
``scheduler``.  The runner's final status is the final word: a job Slurm says
ended without one is failed with Slurm's state in words, and a job Slurm no
longer knows is never taken as done.

Every Slurm command runs with an argv list (no shell) and machine-readable
output (``--parsable``, ``-o`` field lists, ``scontrol -o``); one ``squeue``
answers for all of this user's jobs per look, and looks back off while nothing
changes.  A command that fails or times out keeps the last known state.
"""

import getpass
import grp
import os
import re
import shlex
import shutil
import subprocess
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple  # noqa: F401 (type comments)

from . import chunks, jobdir, protocol
from .executors import CANCEL_POLL, CANCEL_WAIT, Executor
from .jobdir import Status  # noqa: F401 (type comments)

REQUIRED = ("sbatch", "squeue", "scontrol", "scancel", "sinfo")
COMMAND_TIMEOUT = 20.0  # seconds any one Slurm command may take
DISCOVERY_TIMEOUT = 5.0  # ...and at an agent's start (a controller that is away takes 9 s)
SLURM_FILE = "slurm.json"  # the job's Slurm job id(s), written at submission
SCHEDULER_FILE = jobdir.SCHEDULER  # what Slurm last said of it, for the status
SCRIPT = "job.sbatch"
TASK_SCRIPT = "task.sbatch"  # a chunked job's array: task N is run-task JOB_DIR N
JOIN_SCRIPT = "join.sbatch"  # ...and its join, after the array (afterok)
FIRST_LOOK = 2.0  # seconds between squeue looks while things change...
LONGEST_LOOK = 30.0  # ...backing off to this while nothing does
LOST_AFTER = 60.0  # a submission with no job id and no job of its name by then is lost
NAME_PREFIX = "framewire-"

# squeue's fields, "|"-separated: job id, array job id, array task id, name, state,
# reason, nodes, start (expected, while pending), submit time, partition, time limit.
SQUEUE_FORMAT = "%i|%A|%K|%j|%T|%r|%N|%S|%V|%P|%l"
ACTIVE = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED",
          "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "SIGNALING", "STAGE_OUT", "PREEMPTED",
          "RESV_DEL_HOLD", "SPECIAL_EXIT")
STILL_QUEUED = ("PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "PREEMPTED",
                "RESV_DEL_HOLD", "SPECIAL_EXIT", "SUSPENDED")

# Slurm's pending reasons, as a person would say them (squeue's %r).
REASONS = {
    "None": "waiting to be scheduled",
    "Priority": "waiting behind higher-priority jobs",
    "Resources": "waiting for free nodes",
    "Dependency": "waiting for the jobs it depends on",
    "DependencyNeverSatisfied": "it depends on a job that failed: it will never run",
    "BeginTime": "waiting for its start time",
    "JobHeldUser": "held by you (scontrol release to let it run)",
    "JobHeldAdmin": "held by an administrator",
    "PartitionDown": "its partition is down",
    "PartitionInactive": "its partition is inactive",
    "PartitionNodeLimit": "it asks for more nodes than the partition allows",
    "PartitionTimeLimit": "it asks for more time than the partition allows",
    "ReqNodeNotAvail": "the nodes it needs are not available (down or drained)",
    "NodeDown": "a node it needs is down",
    "Reservation": "waiting for its reservation",
    "ReservationDeleted": "its reservation was deleted",
    "QOSMaxJobsPerUserLimit": "you are at your QOS job limit",
    "QOSMaxSubmitJobPerUserLimit": "you are at your QOS submission limit",
    "QOSMaxCpuPerUserLimit": "you are at your QOS CPU limit",
    "QOSMaxNodePerUserLimit": "you are at your QOS node limit",
    "QOSMaxWallDurationPerJobLimit": "it asks for more time than your QOS allows",
    "QOSGrpCpuLimit": "your group is at its QOS CPU limit",
    "QOSGrpJobsLimit": "your group is at its QOS job limit",
    "QOSGrpNodeLimit": "your group is at its QOS node limit",
    "QOSResourceLimit": "a QOS resource limit holds it",
    "AssocMaxJobsLimit": "you are at your account's job limit",
    "AssocGrpCpuLimit": "your account is at its CPU limit",
    "AssocGrpJobsLimit": "your account is at its job limit",
    "AssocGrpNodeLimit": "your account is at its node limit",
    "AssociationJobLimit": "your account's job limit holds it",
    "AssociationResourceLimit": "your account's resource limit holds it",
    "AssociationTimeLimit": "your account's time limit holds it",
    "JobArrayTaskLimit": "waiting for earlier tasks of its array",
    "MaxJobsPerAccount": "your account is at its job limit",
    "Licenses": "waiting for licenses",
    "BadConstraints": "its constraints cannot be met",
    "InvalidAccount": "its account is not valid",
    "InvalidQOS": "its QOS is not valid",
    "Prolog": "its prolog is running",
    "launch failed requeued held": "its launch failed; it is held",
}

# Reasons Slurm gives as sentences (squeue's %r), whole.
SENTENCES = {
    "Nodes required for job are DOWN, DRAINED or reserved for jobs in higher priority "
    "partitions": "the nodes it needs are not available (down or drained), or are reserved "
                  "for jobs in higher-priority partitions",
}

# How Slurm ended a job, in words, when the runner could not say it itself.
ENDINGS = {
    "TIMEOUT": "Slurm stopped it at its time limit of {limit}; ask for a longer time "
               "(slurm.time), or fewer frames per video.",
    "OUT_OF_MEMORY": "Slurm stopped it: it ran out of memory{mem}; ask for more "
                     "(slurm.mem).",
    "NODE_FAIL": "The node it ran on ({nodes}) failed; make the video again.",
    "BOOT_FAIL": "The node it was given ({nodes}) failed to boot; make the video again.",
    "DEADLINE": "Slurm ended it at its deadline.",
    "REVOKED": "Slurm revoked it (it ran on another cluster of a federation).",
    "CANCELLED": "Slurm job {job} was cancelled outside framewire (scancel or an "
                 "administrator).",
    "FAILED": "The Slurm job {job} failed (exit code {code}) before the runner finished.",
    "COMPLETED": "The Slurm job {job} ended without its runner's final status.",
}


class SlurmError(Exception):
    """A Slurm command failed or timed out: its words, for the log or the user."""


def run(argv, timeout=COMMAND_TIMEOUT):
    # type: (List[str], float) -> Tuple[int, str, str]
    """A Slurm command: exit status, stdout, stderr; SlurmError if it cannot run."""
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    except OSError as error:
        raise SlurmError("%s: %s" % (argv[0], error.strerror)) from None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise SlurmError("%s did not answer within %.0f s" % (argv[0], timeout)) from None
    return (proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


def key_values(line):
    # type: (str) -> Dict[str, str]
    """``scontrol -o`` output: ``Key=Value`` words (a value ends at the next space)."""
    found = {}  # type: Dict[str, str]
    for word in line.split():
        key, sep, value = word.partition("=")
        if sep:
            found[key] = value
    return found


def seconds(text):
    # type: (Optional[str]) -> Optional[int]
    """A Slurm time (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``) in seconds;
    None for UNLIMITED, INFINITE, NONE, N/A or what is not a time."""
    if not text or text.upper() in ("UNLIMITED", "INFINITE", "NONE", "N/A"):
        return None
    match = TIME.match(text)
    if match is None:
        return None
    days, rest = match.group(1), match.group(2)
    parts = [int(part) for part in rest.split(":")]
    if days is not None:  # D-HH, D-HH:MM, D-HH:MM:SS
        parts += [0] * (3 - len(parts))
        hours, minutes, secs = parts
        return ((int(days) * 24 + hours) * 60 + minutes) * 60 + secs
    if len(parts) == 1:  # minutes
        return parts[0] * 60
    if len(parts) == 2:  # minutes:seconds
        return parts[0] * 60 + parts[1]
    return (parts[0] * 60 + parts[1]) * 60 + parts[2]


TIME = re.compile(r"^(?:(\d{1,4})-)?(\d{1,5}(?::\d{1,2}){0,2})$")


def clock(total):
    # type: (Optional[int]) -> str
    """Seconds as Slurm writes a limit: ``D-HH:MM:SS`` or ``HH:MM:SS``."""
    if total is None:
        return "UNLIMITED"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    text = "%02d:%02d:%02d" % (hours, rest // 60, rest % 60)
    return "%d-%s" % (days, text) if days else text


def _number(text):
    # type: (Optional[str]) -> Optional[int]
    return int(text) if text and text.isdigit() else None


# -- discovery -------------------------------------------------------------------

def discover():
    # type: () -> Optional[Dict[str, Any]]
    """What this host's Slurm offers the agent's user, or None without one: the
    version, the partitions the user may submit to with their limits, the
    default partition, and whether sacct answers."""
    paths = {name: shutil.which(name) for name in REQUIRED + ("sacct",)}
    if not all(paths[name] for name in REQUIRED):
        return None
    try:
        status, out, _ = run(["sinfo", "--version"], DISCOVERY_TIMEOUT)
        version = out.split()[-1] if status == 0 and out.split() else None
        status, out, err = run(["scontrol", "-o", "show", "partition"], DISCOVERY_TIMEOUT)
    except SlurmError as error:
        return {"version": None, "partitions": [], "default_partition": None,
                "sacct": False, "error": str(error), "user": getpass.getuser()}
    if status != 0:
        return {"version": version, "partitions": [], "default_partition": None,
                "sacct": False, "error": (err or out).strip()[-300:],
                "user": getpass.getuser()}
    groups = _groups()
    partitions = []  # type: List[Dict[str, Any]]
    for line in out.splitlines():
        fields = key_values(line)
        name = fields.get("PartitionName")
        allowed = fields.get("AllowGroups", "ALL")
        if not name or fields.get("Hidden") == "YES" or fields.get("RootOnly") == "YES" and \
                os.geteuid() != 0:
            continue
        if allowed != "ALL" and not groups.intersection(allowed.split(",")):
            continue
        limit = seconds(fields.get("MaxTime"))
        partitions.append({
            "name": name, "default": fields.get("Default") == "YES",
            "state": fields.get("State", "UNKNOWN"),
            "max_time": limit, "max_time_text": clock(limit),
            "max_nodes": _number(fields.get("MaxNodes")),
            "max_cpus_per_node": _number(fields.get("MaxCPUsPerNode")),
            "cpus": _number(fields.get("TotalCPUs")),
            "nodes": _number(fields.get("TotalNodes")),
        })
    default = next((item["name"] for item in partitions if item["default"]), None)
    return {"version": version, "partitions": partitions, "default_partition": default,
            "sacct": bool(paths["sacct"]) and _sacct_answers(), "user": getpass.getuser()}


def _groups():
    # type: () -> set
    names = set()
    for gid in os.getgroups() + [os.getgid()]:
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    return names


def _sacct_answers():
    # type: () -> bool
    """Whether sacct works here (without slurmdbd it says accounting is disabled)."""
    try:
        status, _, _ = run(["sacct", "-n", "-P", "-X", "-o", "JobID", "-S", "now"],
                           DISCOVERY_TIMEOUT)
    except SlurmError:
        return False
    return status == 0


# -- the executor -------------------------------------------------------------------

class SlurmExecutor(Executor):
    """The runner as a Slurm batch job on the cluster's compute nodes."""

    def __init__(self, runner_argv, setup=None, user=None, sacct=False, clock_=time.time):
        # type: (List[str], Optional[List[List[str]]], Optional[str], bool, Any) -> None
        self.runner_argv = runner_argv
        self.setup = setup or []  # the host's set-up commands, each an argv list
        self.user = user or getpass.getuser()
        self.sacct = sacct
        self.now = clock_
        self._rows = {}  # type: Dict[str, Dict[str, str]]  # squeue's last answer, by job id
        self._looked = 0.0
        self._interval = FIRST_LOOK
        self._last_seen = None  # type: Optional[Dict[str, Tuple[str, str, str]]]
        self._lock = threading.RLock()  # following a chunked job, and cancelling one
        self._plans = {}  # type: Dict[str, Tuple[Any, List[chunks.Task]]]  # by job directory

    # -- submit -----------------------------------------------------------

    def script(self, job_dir):
        # type: (str) -> str
        """The batch script: the set-up commands, then the runner (every word quoted)."""
        return self._task_script(job_dir, self.runner_argv + [job_dir],
                                 what="the runner of job")

    def sbatch_argv(self, job_dir, placement):
        # type: (str, Any) -> List[str]
        job = os.path.basename(job_dir)
        argv = ["sbatch", "--parsable", "--job-name=" + NAME_PREFIX + job,
                "--chdir=" + job_dir, "--output=" + os.path.join(job_dir, "slurm-%j.out"),
                "--open-mode=append"]
        for flag, value in (("--partition", placement.partition), ("--time", placement.time),
                            ("--cpus-per-task", placement.cpus), ("--mem", placement.mem),
                            ("--account", placement.account), ("--qos", placement.qos)):
            if value:
                argv.append("%s=%s" % (flag, value))
        argv += list(placement.options)
        return argv + [os.path.join(job_dir, SCRIPT)]

    def submit(self, job_dir):
        # type: (str) -> None
        from .spec import Spec

        spec = Spec.from_json(jobdir.read_json(os.path.join(job_dir, jobdir.SPEC)))
        if chunks.split(spec):
            return self._submit_chunked(job_dir, spec)
        path = os.path.join(job_dir, SCRIPT)
        with open(path, "w") as handle:
            handle.write(self.script(job_dir))
        os.chmod(path, 0o700)
        # Named before it is submitted: an agent that dies before it records the id
        # finds the job again by its name.
        record = {"name": NAME_PREFIX + spec.job, "job_ids": [], "submitted": self.now()}
        jobdir.write_json(os.path.join(job_dir, SLURM_FILE), record)
        try:
                job_id = self._sbatch(self.sbatch_argv(job_dir, spec.placement))
        finally:
            pass
        record["job_ids"] = [job_id]
        jobdir.write_json(os.path.join(job_dir, SLURM_FILE), record)
        self._looked = 0.0  # look at the new job at the next poll

    @staticmethod
    def _sbatch(argv):
        # type: (List[str]) -> str
        """Submit; the new job's id, or SLURM_REFUSED with sbatch's words."""
        try:
            status, out, err = run(argv, 60)
        except SlurmError as error:
            raise protocol.AgentError(protocol.SLURM_REFUSED, "sbatch did not answer: %s."
                                      % error, {"hint": "Check Slurm on the host "
                                                "(sinfo), then make the video again."}) \
                from None
        job_id = out.strip().split(";")[0]  # --parsable: "ID" or "ID;CLUSTER"
        if status != 0 or not job_id.isdigit():
            said = (err or out).strip().splitlines()
            raise protocol.AgentError(
                protocol.SLURM_REFUSED, "Slurm refused the job: %s"
                % (said[-1] if said else "sbatch exited with %d" % status),
                {"hint": "Check the partition, time, CPUs and memory asked for (and the "
                         "account or QOS in this host's profile)."})
        return job_id

    # -- chunked jobs: one array of tasks, and a join that depends on it ------------

    def _task_script(self, job_dir, words, tail="", what="part of job"):
        # type: (str, List[str], str, str) -> str
        """A batch script: the host's set-up commands, each checked, then ``words`` (each
        quoted; ``tail`` is shell text after them, such as the array's task id)."""
        lines = ["#!/bin/sh -l" if self.setup else "#!/bin/sh",
                 "# framewire: %s %s, submitted by its agent." % (what,
                                                                os.path.basename(job_dir))]
        for index, step in enumerate(self.setup, start=1):
            lines.append("%s || { echo 'framewire: the set-up command %d failed' >&2; "
                         "exit 126; }" % (" ".join(shlex.quote(word) for word in step), index))
        lines.append("exec " + " ".join(shlex.quote(word) for word in words) + tail)
        return "\n".join(lines) + "\n"

    def _write_scripts(self, job_dir):
        # type: (str) -> None
        base = self.runner_argv[:-1]  # the agent, without its "run-job"
        for name, words, tail in (
                (TASK_SCRIPT, base + ["run-task", job_dir], ' "$SLURM_ARRAY_TASK_ID"'),
                (JOIN_SCRIPT, base + ["run-join", job_dir], "")):
            path = os.path.join(job_dir, name)
            with open(path, "w") as handle:
                handle.write(self._task_script(job_dir, words, tail))
            os.chmod(path, 0o700)

    def _array_argv(self, job_dir, spec, numbers):
        # type: (str, Any, str) -> List[str]
        argv = self.sbatch_argv(job_dir, spec.placement)[:-1]
        argv = [word for word in argv if not word.startswith("--output=")]
        argv += ["--array=" + numbers,
                 "--output=" + os.path.join(job_dir, chunks.CHUNKS_DIR, "slurm-%A_%a.out")]
        return argv + [os.path.join(job_dir, TASK_SCRIPT)]

    def _join_argv(self, job_dir, spec, after_ok, after_any):
        # type: (str, Any, List[str], List[str]) -> List[str]
        argv = self.sbatch_argv(job_dir, spec.placement)[:-1]
        argv = [word if not word.startswith("--job-name=") else word + "-join"
                for word in argv if not word.startswith("--cpus-per-task=")]
        depends = []
        if after_ok:
            depends.append("afterok:" + ":".join(after_ok))
        if after_any:
            depends.append("afterany:" + ":".join(after_any))
        if depends:
            argv += ["--dependency=" + ",".join(depends), "--kill-on-invalid-dep=yes"]
        return argv + [os.path.join(job_dir, JOIN_SCRIPT)]

    def _submit_chunked(self, job_dir, spec):
        # type: (str, Any) -> None
        found = chunks.prepare(job_dir, spec, spec.placement.cpus)
        self._write_scripts(job_dir)
        record = {"name": NAME_PREFIX + spec.job, "job_ids": [], "submitted": self.now(),
                  "chunked": True, "tasks": {}, "arrays": [], "join": None}  # type: Dict[str, Any]
        jobdir.write_json(os.path.join(job_dir, SLURM_FILE), record)
        last = len(found) - 1
        cap = spec.placement.parallel  # the host profile's max_parallel_chunks, if any
        numbers = "0-%d" % last if last else "0"
        if cap and cap < len(found):
            numbers += "%%%d" % cap
        for task in found:  # counted at submission (a task that never starts counts)
            told = chunks.task_status(task)
            told["attempts"] = 1
            jobdir.write_status(task.directory, told)
        array = self._sbatch(self._array_argv(job_dir, spec, numbers))
        record["arrays"] = [array]
        record["tasks"] = {task.name: [array, str(number)] for number, task in enumerate(found)}
        record["job_ids"] = [array]
        jobdir.write_json(os.path.join(job_dir, SLURM_FILE), record)
        try:
            join = self._sbatch(self._join_argv(job_dir, spec, [array], []))
        except protocol.AgentError:
            run(["scancel", array])
            raise
        record["join"] = join
        record["job_ids"] = [array, join]
        jobdir.write_json(os.path.join(job_dir, SLURM_FILE), record)
        self._looked = 0.0

    def _task_rows(self, record, names):
        # type: (Dict[str, Any], List[str]) -> Dict[str, Optional[Dict[str, str]]]
        """squeue's row for each task named (scontrol's for one squeue no longer lists;
        None for one Slurm does not know at all), by task name."""
        by_place = {}  # type: Dict[Tuple[str, str], Dict[str, str]]
        for row in self._rows.values():
            array, task = row.get("array_id", ""), row.get("task", "")
            if task.isdigit():
                by_place[(array, task)] = row
            elif array and task not in ("", "N/A"):  # "2-4%2": tasks not yet started
                for number in _expand(task):
                    by_place.setdefault((array, str(number)), dict(row, state="PENDING"))
        found = {}  # type: Dict[str, Optional[Dict[str, str]]]
        for name in names:
            array, number = record["tasks"][name]
            found[name] = by_place.get((array, number)) or \
                self._ask_scontrol("%s_%s" % (array, number))
        return found

    def _follow_chunked(self, job_dir, status):
        # type: (str, Status) -> Status
        """A chunked job: its tasks (retried alone when Slurm ends one without its
        chunk), its join, and the status composed from the tasks' own."""
        from .chunked import describe, views

        with self._lock:  # the watcher and a cancel must not retry (or cancel) at once
            record = _slurm_record(job_dir)
            latest = jobdir.read_status(job_dir)
            if latest["status"] in protocol.FINAL_STATES:
                return latest
            spec, found = self._plan_of(job_dir)
            asked = os.path.exists(os.path.join(job_dir, jobdir.CANCEL_MARK))
            told_tasks = {task.name: chunks.task_status(task) for task in found}
            unfinished = [task.name for task in found
                          if told_tasks[task.name].get("status") != protocol.SUCCEEDED]
            rows = self._task_rows(record, unfinished)
            nodes = {}  # type: Dict[str, str]
            waiting = running = 0
            for task in found:
                told = told_tasks[task.name]
                node = told.get("node")
                if node:
                    nodes[task.name] = node
                if task.name not in unfinished:
                    continue
                row = rows.get(task.name)
                # None: Slurm no longer knows the task at all; it is gone.
                state = row["state"].split()[0].rstrip("+") if row else "GONE"
                if row and _nodes(row.get("nodes")):
                    nodes[task.name] = _nodes(row.get("nodes"))[0]
                if state == "UNKNOWN":  # Slurm did not answer: counts as still going
                    running += 1
                elif state in STILL_QUEUED:
                    waiting += 1
                elif state in ACTIVE:
                    running += 1
                elif not asked:
                    # Its Slurm job ended without the chunk: try it again alone, or fail.
                    if chunks.task_status(task).get("status") == protocol.SUCCEEDED:
                        continue
                    if int(told.get("attempts", 0)) >= chunks.MAX_ATTEMPTS:
                        self._scancel(record)
                        latest = jobdir.read_status(job_dir)
                        latest["chunks"] = views(found, nodes)
                        return jobdir.end_job(
                            job_dir, latest, protocol.FAILED, "%s failed %d times; the last "
                            "time: %s" % (describe(task), int(told.get("attempts", 0)),
                                          told.get("message") if told.get("status") in
                                          protocol.FINAL_STATES else "Slurm ended its task "
                                          "as %s" % state.lower()))
                    self._retry(job_dir, spec, record, task)
                    waiting += 1
            latest = jobdir.read_status(job_dir)
            if latest["status"] in protocol.FINAL_STATES:
                return latest
            join_id = record.get("join")
            join_row = (self._rows.get(join_id) or self._ask_scontrol(join_id)) \
                if join_id else None
            join_state = join_row["state"].split()[0].rstrip("+") if join_row else "GONE"
            if join_state not in ACTIVE and join_state != "UNKNOWN":
                if asked:
                    return jobdir.end_job(job_dir, latest, protocol.CANCELED, "Canceled.")
                if waiting or running:
                    # Replaced by a retry's join, or one that started before a retry and
                    # found a chunk missing: a join that waits for what still runs.
                    self._new_join(job_dir, spec, record)
                elif not latest.get("join_started") and join_state in ("CANCELLED", "GONE"):
                    # Every chunk is done and the join never ran (a task's exit status
                    # broke its afterok after the chunk was written): join now.
                    self._new_join(job_dir, spec, record, depend=False)
                elif join_row is None:
                    return self._lost(job_dir, latest, join_id or "?")
                else:
                    return self._ended(job_dir, latest, join_id or "?", join_row, join_state)
            if latest.get("join_started"):  # the join runs and writes the status itself
                return dict(latest, scheduler=dict(_remembered(job_dir), state=join_state))
            shown = views(found, nodes)
            done = sum(1 for view in shown if view["state"] == protocol.SUCCEEDED)
            composed = dict(latest)
            composed["chunks"] = shown
            starts = [moment for moment in (_epoch_iso(view.get("started")) for view in shown)
                      if moment is not None]
            composed.update(chunks.summary(spec, shown, min(starts) if starts else None))
            count = len([task for task in found if task.index is not None])
            if running:
                composed.update({"status": protocol.RUNNING, "phase": "encoding",
                                 "message": "Encoding %d chunks: %d running, %d waiting, %d "
                                 "done." % (count, running, waiting, done)})
                if not composed["events"].get("started"):
                    composed["events"]["started"] = jobdir.now()
            elif waiting:
                composed.update({"phase": "waiting in queue", "message": "Waiting in the "
                                 "Slurm queue: %d of %d tasks to run." % (waiting, len(found))})
            else:
                composed.update({"phase": "joining", "eta_seconds": None,
                                 "message": "Every chunk is done; waiting for the join to "
                                            "start."})
            scheduler = dict(_remembered(job_dir), kind="slurm",
                             job_ids=list(record.get("job_ids", [])),
                             state="RUNNING" if running else
                             ("PENDING" if waiting else join_state),
                             nodes=sorted(set(nodes.values())))
            _remember(job_dir, scheduler)
            composed["scheduler"] = scheduler
            comparable = ("status", "phase", "frames_done", "chunks", "message")
            if any(composed.get(key) != latest.get(key) for key in comparable):
                again = jobdir.read_status(job_dir)
                if again["status"] not in protocol.FINAL_STATES \
                        and not again.get("join_started"):
                    stored = dict(composed)
                    stored.pop("scheduler", None)
                    jobdir.write_status(job_dir, stored)
            return composed

    def _plan_of(self, job_dir):
        # type: (str) -> Tuple[Any, List[chunks.Task]]
        """A chunked job's spec and tasks, read and ordered once per job: the spec never
        changes, and a large one is costly to parse and slice at every look."""
        from .spec import Spec

        known = self._plans.get(job_dir)
        if known is None:
            spec = Spec.from_json(jobdir.read_json(os.path.join(job_dir, jobdir.SPEC)))
            known = self._plans[job_dir] = (spec, chunks.tasks(job_dir, spec))
        return known

    def _active_arrays(self, record):
        # type: (Dict[str, Any]) -> List[str]
        """The job's arrays with a task Slurm still runs or holds (per the last look)."""
        still = set(row.get("array_id") or row.get("id") for row in self._rows.values()
                    if row["state"].split()[0].rstrip("+") in ACTIVE)
        return [array for array in record.get("arrays", []) if array in still]

    def _retry(self, job_dir, spec, record, task):
        # type: (str, Any, Dict[str, Any], chunks.Task) -> None
        """Submit one task again, alone, and a join that waits for it too.  The record
        is written after each submission, so nothing submitted is ever unrecorded."""
        number = record["tasks"][task.name][1]
        attempts = int(chunks.task_status(task).get("attempts", 0))
        fresh = chunks.reset(task)
        fresh["attempts"] = attempts + 1  # counted at submission: a task that never
        jobdir.write_status(task.directory, fresh)  # starts still uses up its attempts
        array = self._sbatch(self._array_argv(job_dir, spec, number))
        record.setdefault("failed_arrays", []).append(record["tasks"][task.name][0])
        record["tasks"][task.name] = [array, number]
        record["arrays"].append(array)
        record["job_ids"] = list(record["arrays"]) + ([record["join"]] if record.get("join")
                                                      else [])
        jobdir.write_json(os.path.join(job_dir, SLURM_FILE), record)
        self._new_join(job_dir, spec, record, fresh_array=array)

    def _new_join(self, job_dir, spec, record, depend=True, fresh_array=None):
        # type: (str, Any, Dict[str, Any], bool, Optional[str]) -> None
        """Submit a join that waits for every array still running (afterok on one with
        no failure, afterany on one with a failure: its other tasks may still end),
        record it, then cancel the join it replaces.  A finished array is not named
        (Slurm may have forgotten it): the join checks every chunk itself."""
        failed = set(record.get("failed_arrays") or [])
        active = self._active_arrays(record)
        if fresh_array and fresh_array not in active:
            active.append(fresh_array)  # just submitted: not in the last look yet
        after_ok = [array for array in active if array not in failed] if depend else []
        after_any = [array for array in active if array in failed] if depend else []
        old = record.get("join")
        record["join"] = self._sbatch(self._join_argv(job_dir, spec, after_ok, after_any))
        record["job_ids"] = list(record["arrays"]) + [record["join"]]
        jobdir.write_json(os.path.join(job_dir, SLURM_FILE), record)
        if old:
            try:
                run(["scancel", old])
            except SlurmError:
                pass
        self._looked = 0.0

    def _scancel(self, record):
        # type: (Dict[str, Any]) -> None
        ids = list(record.get("arrays") or []) + ([record["join"]] if record.get("join") else [])
        if ids:
            try:
                run(["scancel"] + ids)
            except SlurmError:
                pass

    # -- poll -------------------------------------------------------------------

    def poll_all(self, jobs):
        # type: (Sequence[Tuple[str, Status]]) -> Dict[str, Status]
        unfinished = [(job_dir, status) for job_dir, status in jobs
                      if status["status"] not in protocol.FINAL_STATES]
        current = {}  # type: Dict[str, Status]
        for job_dir, status in jobs:  # final: as the runner left it, with Slurm's ids
            if status["status"] in protocol.FINAL_STATES:
                told = self._settle(job_dir, _remembered(job_dir))
                current[job_dir] = dict(status, scheduler=told) if told else status
        if unfinished:
            self._look()
        for job_dir, status in unfinished:
            try:
                current[job_dir] = self._follow(job_dir, status)
            except protocol.AgentError:
                continue  # its directory vanished meanwhile
        for job_dir, status in current.items():
            if status["status"] in protocol.FINAL_STATES:
                self._plans.pop(job_dir, None)
        return current

    def _settle(self, job_dir, told):
        # type: (str, Dict[str, Any]) -> Dict[str, Any]
        """What Slurm last said of a job the runner has ended, brought up to date once
        (a short job ends between two looks: its node, start and end state were
        never seen)."""
        ids = told.get("job_ids") or []
        if len(ids) != 1 or told.get("state") not in ACTIVE:
            return told  # a chunked job's array and join: its status says it all
        row = self._ask_scontrol(ids[0])
        if row is None or row["state"] == "UNKNOWN":
            return told
        settled = dict(told, state=row["state"].split()[0].rstrip("+"), reason=None,
                       reason_text=None, expected_start=None,
                       nodes=_nodes(row.get("nodes")) or told.get("nodes") or [],
                       started_at=_iso(row.get("start")) or told.get("started_at"))
        _remember(job_dir, settled)
        return settled

    def _look(self):
        # type: () -> None
        """squeue once for all of this user's jobs, unless the last look is recent
        (the interval grows while nothing changes)."""
        moment = self.now()
        if moment - self._looked < self._interval:
            return
        try:
            status, out, err = run(["squeue", "-h", "-u", self.user, "-t", "all",
                                    "-o", SQUEUE_FORMAT])
        except SlurmError:
            return  # keep the last known states; look again next time
        if status != 0:
            return
        rows = {}  # type: Dict[str, Dict[str, str]]
        for line in out.splitlines():
            parts = line.split("|")
            if len(parts) != 11:
                continue
            row = dict(zip(("id", "array_id", "task", "name", "state", "reason", "nodes",
                            "start", "submit", "partition", "limit"), parts))
            rows[row["id"]] = row
            if row["array_id"] not in ("", "N/A"):
                rows.setdefault(row["array_id"], row)
        seen = {key: (row["state"], row["reason"], row["nodes"]) for key, row in rows.items()}
        if seen == self._last_seen:
            self._interval = min(LONGEST_LOOK, self._interval * 2)
        else:
            self._interval = FIRST_LOOK
        self._last_seen = seen
        self._rows = rows
        self._looked = moment

    def _follow(self, job_dir, status):
        # type: (str, Status) -> Status
        record = _slurm_record(job_dir)
        if record.get("chunked") and record.get("arrays"):
            if not record.get("join"):  # an agent that died between the two submissions
                from .spec import Spec
                with self._lock:
                    self._new_join(job_dir, Spec.from_json(jobdir.read_json(
                        os.path.join(job_dir, jobdir.SPEC))), record)
            return self._follow_chunked(job_dir, status)
        ids = record.get("job_ids") or []
        if not ids:
            ids = self._find_by_name(job_dir, record)
            if not ids:
                if self.now() - float(record.get("submitted") or 0) > LOST_AFTER:
                    return jobdir.end_job(job_dir, status, protocol.FAILED, "The submission "
                                          "to Slurm did not finish: no job is named %s."
                                          % record.get("name"))
                return status
        job_id = ids[0]
        row = self._rows.get(job_id)
        if row is None:
            row = self._ask_scontrol(job_id)
        if row is None:
            return self._lost(job_dir, status, job_id)
        state = row["state"].split()[0].rstrip("+")
        if state == "UNKNOWN":  # Slurm did not answer: the last known state stands
            told = _remembered(job_dir)
            return dict(status, scheduler=told) if told else status
        if state in ACTIVE:
            return self._waiting_or_running(job_dir, status, job_id, row, state)
        return self._ended(job_dir, status, job_id, row, state)

    def _find_by_name(self, job_dir, record):
        # type: (str, Dict[str, Any]) -> List[str]
        name = record.get("name")
        found = [row["id"] for row in self._rows.values() if row["name"] == name]
        if found:
            record["job_ids"] = found[:1]
            jobdir.write_json(os.path.join(job_dir, SLURM_FILE), record)
        return found[:1]

    def _ask_scontrol(self, job_id):
        # type: (str) -> Optional[Dict[str, str]]
        """A job squeue no longer lists: scontrol (within MinJobAge), else sacct."""
        try:
            status, out, err = run(["scontrol", "-o", "show", "job", job_id])
        except SlurmError:
            return {"state": "UNKNOWN"}  # not an answer: keep what we know
        if status != 0 and "invalid job id" not in (err + out).lower():
            return {"state": "UNKNOWN"}  # the controller is away, not the job
        if status == 0 and out.strip():
            fields = key_values(out.splitlines()[0])
            return {"id": job_id, "state": fields.get("JobState", "UNKNOWN"),
                    "reason": fields.get("Reason", ""), "nodes": fields.get("NodeList", ""),
                    "limit": fields.get("TimeLimit", ""), "exit": fields.get("ExitCode", ""),
                    "partition": fields.get("Partition", ""),
                    "start": fields.get("StartTime", ""), "submit": fields.get("SubmitTime", "")}
        if self.sacct:
            try:
                status, out, _ = run(["sacct", "-n", "-P", "-X", "-o",
                                      "JobID,State,ExitCode,NodeList,Timelimit", "-j", job_id])
            except SlurmError:
                return {"state": "UNKNOWN"}
            if status != 0:
                return {"state": "UNKNOWN"}
            for line in out.splitlines():
                parts = line.split("|")
                if len(parts) == 5 and parts[0] == job_id:
                    return {"id": job_id, "state": parts[1], "exit": parts[2],
                            "nodes": parts[3], "limit": parts[4], "reason": "",
                            "partition": "", "start": "", "submit": ""}
        return None

    def _waiting_or_running(self, job_dir, status, job_id, row, state):
        # type: (str, Status, str, Dict[str, str], str) -> Status
        queued = state in STILL_QUEUED
        if queued and status["status"] == protocol.RUNNING and not _requeued(status, state):
            # The runner has started since squeue's answer: that answer is stale. Look
            # again soon; meanwhile the runner's word, with what Slurm said before.
            self._looked = 0.0
            told = _remembered(job_dir)
            return dict(status, scheduler=told) if told else status
        reason, words = _reason(row.get("reason", ""))
        # The time waited is the reader's to work out (now - submitted_at): stored, it
        # would change the file, and wake every watcher, on every look.
        scheduler = {  # type: Dict[str, Any]
            "kind": "slurm", "job_ids": [job_id], "state": state,
            "partition": row.get("partition") or None,
            "reason": reason if queued and reason not in ("", "None") else None,
            "reason_text": words if queued else None,
            "submitted_at": _iso(row.get("submit")),
            "expected_start": _iso(row.get("start")) if queued else None,
            "started_at": None if queued else _iso(row.get("start")),
            "nodes": _nodes(row.get("nodes")),
            "time_limit": row.get("limit") or None,
        }
        _remember(job_dir, scheduler)
        shown = dict(status, scheduler=scheduler)
        if queued and status["status"] == protocol.RUNNING:
            # Requeued (preempted, or its node failed) after the runner started: it
            # waits again and starts over; the runner's last word is not final.
            shown.update({"status": protocol.QUEUED, "phase": "waiting in queue",
                          "eta_seconds": None, "preview": None,
                          "message": "Requeued by Slurm; waiting in "
                          "the queue again: %s." % (scheduler["reason_text"]
                                                    or "waiting to be scheduled")})
        elif status["status"] == protocol.QUEUED:
            if queued:
                shown["phase"] = "waiting in queue"
                shown["message"] = "Waiting in the Slurm queue: %s." % (
                    scheduler["reason_text"] or "waiting to be scheduled")
            else:
                shown["phase"] = "starting"
                shown["message"] = "Starting on %s." % (", ".join(scheduler["nodes"])
                                                       or "a compute node")
        return shown

    def _ended(self, job_dir, status, job_id, row, state):
        # type: (str, Status, str, Dict[str, str], str) -> Status
        """Slurm says the job ended; the runner's final status, or Slurm's words."""
        # The mark first: a runner that ends canceled removes it after its final write.
        asked = os.path.exists(os.path.join(job_dir, jobdir.CANCEL_MARK))
        latest = jobdir.read_status(job_dir)  # the runner may have just written it
        if latest["status"] in protocol.FINAL_STATES:
            return latest
        if asked and state == "CANCELLED":
            return jobdir.end_job(job_dir, latest, protocol.CANCELED, "Canceled.")
        if "exit" not in row and state != "COMPLETED":  # squeue has no exit code
            row = dict(row, **{key: value for key, value in
                               (self._ask_scontrol(job_id) or {}).items() if value})
        code = row.get("exit", "")
        spec_mem = _spec_mem(job_dir)
        limit = row.get("limit") or ""
        message = ENDINGS.get(state, "Slurm ended the job {job} as %s." % state).format(
            job=job_id, limit=clock(seconds(limit)) if seconds(limit) else "its limit",
            nodes=row.get("nodes") or "unknown", code=code.split(":")[0] if code else "?",
            mem=" (limit %s)" % spec_mem if spec_mem else "")
        again = jobdir.read_status(job_dir)
        if again["status"] in protocol.FINAL_STATES:  # written while we looked
            return again
        latest["stderr"] = _tail(job_dir, job_id)
        told = _remembered(job_dir)
        latest["scheduler"] = dict(told, kind="slurm", job_ids=[job_id], state=state,
                                   reason=None, reason_text=None, expected_start=None,
                                   nodes=_nodes(row.get("nodes")) or told.get("nodes") or [])
        return jobdir.end_job(job_dir, latest, protocol.FAILED, message)

    def _lost(self, job_dir, status, job_id):
        # type: (str, Status, str) -> Status
        latest = jobdir.read_status(job_dir)
        if latest["status"] in protocol.FINAL_STATES:
            return latest
        latest["stderr"] = _tail(job_dir, job_id)
        return jobdir.end_job(job_dir, latest, protocol.FAILED,
                              "Slurm lost track of job %s: it no longer knows it, and the "
                              "job left no final status. Its log's last lines are in "
                              "stderr; make the video again." % job_id)

    # -- cancel -------------------------------------------------------------------

    def cancel(self, job_dir, status):
        # type: (str, Status) -> Status
        with self._lock:
            return self._cancel(job_dir, status)

    def _cancel(self, job_dir, status):
        # type: (str, Status) -> Status
        record = _slurm_record(job_dir)
        ids = list(record.get("job_ids") or []) + list(record.get("arrays") or [])
        if record.get("join"):
            ids.append(record["join"])
        ids = sorted(set(ids))
        if ids:
            try:
                run(["scancel"] + ids)
            except SlurmError:
                pass
        self._looked = 0.0
        if record.get("chunked") or status["status"] == protocol.QUEUED:
            # Cancelled before it ran: it never will (scancel is immediate for a pending
            # job); a chunked job's tasks each end canceled, and no runner of the whole
            # job is there to say it.
            latest = jobdir.read_status(job_dir)
            if latest["status"] == protocol.QUEUED or record.get("chunked") and \
                    latest["status"] not in protocol.FINAL_STATES and \
                    latest.get("phase") != "joining":
                return jobdir.end_job(job_dir, latest, protocol.CANCELED, "Canceled.")
        deadline = time.time() + CANCEL_WAIT
        while time.time() < deadline:
            latest = jobdir.read_status(job_dir)
            if latest["status"] in protocol.FINAL_STATES:
                return latest
            time.sleep(CANCEL_POLL)
        return jobdir.end_job(job_dir, jobdir.read_status(job_dir), protocol.CANCELED,
                              "Canceled.")


def _slurm_record(job_dir):
    # type: (str) -> Dict[str, Any]
    try:
        return jobdir.read_json(os.path.join(job_dir, SLURM_FILE))
    except (OSError, ValueError):
        return {}


def _remember(job_dir, scheduler):
    # type: (str, Dict[str, Any]) -> None
    """Keep what Slurm said in the job directory when it changed (the watcher sees
    the file change, and a later agent has it)."""
    if _remembered(job_dir) != scheduler:
        try:
            jobdir.write_json(os.path.join(job_dir, SCHEDULER_FILE), scheduler)
        except OSError:
            pass


def _remembered(job_dir):
    # type: (str) -> Dict[str, Any]
    try:
        return jobdir.read_json(os.path.join(job_dir, SCHEDULER_FILE))
    except (OSError, ValueError):
        return {}


def scheduler_of(job_dir):
    # type: (str) -> Optional[Dict[str, Any]]
    """What Slurm last said of a job (for statuses read without a poll)."""
    return _remembered(job_dir) or None


def _spec_mem(job_dir):
    # type: (str) -> Optional[str]
    try:
        placement = jobdir.read_json(os.path.join(job_dir, jobdir.SPEC)).get("placement") or {}
    except (OSError, ValueError):
        return None
    return placement.get("mem")


def _tail(job_dir, job_id, size=2000):
    # type: (str, str, int) -> str
    """The end of the batch job's output file and the runner's log."""
    text = ""
    for name in ("slurm-%s.out" % job_id, jobdir.RUNNER_LOG):
        try:
            with open(os.path.join(job_dir, name), "rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - size))
                text += handle.read().decode("utf-8", "replace")
        except OSError:
            continue
    return text[-size:]


def _requeued(status, state):
    # type: (Status, str) -> bool
    """Whether a job whose runner had started is waiting again: Slurm says so in
    its state, or the runner was stopped by a signal (it writes phase "stopped")
    and Slurm holds the job pending."""
    return state in ("REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "PREEMPTED") or \
        status.get("phase") == "stopped"


def _reason(text):
    # type: (str) -> Tuple[str, str]
    """Slurm's pending reason and the same in words: ``ReqNodeNotAvail,
    UnavailableNodes:n[1-2]`` is ``ReqNodeNotAvail``, "the nodes it needs are not
    available (down or drained): n[1-2]".  A reason Slurm writes as a sentence (with
    commas of its own) is known whole."""
    whole = text.strip()
    if whole in SENTENCES:
        return whole, SENTENCES[whole]
    key, _, rest = text.partition(",")
    key = key.strip()
    words = REASONS.get(key, key)
    detail = rest.strip()
    if detail.startswith("UnavailableNodes:"):
        detail = detail[len("UnavailableNodes:"):]
    if detail:
        words = "%s: %s" % (words, detail)
    return key, words


def _nodes(text):
    # type: (Optional[str]) -> List[str]
    if not text or text in ("(null)", "None assigned", "N/A"):
        return []
    return [text]


def _expand(text):
    # type: (str) -> List[int]
    """squeue's task ids of an array's unstarted tasks: "2-4%2" or "1,3,5-6"."""
    numbers = []  # type: List[int]
    for part in text.split("%")[0].strip("[]").split(","):
        low, _, high = part.partition("-")
        if low.isdigit() and (not high or high.isdigit()):
            numbers.extend(range(int(low), int(high or low) + 1))
    return numbers


def _epoch_iso(text):
    # type: (Optional[str]) -> Optional[float]
    """An API time (``2026-12-02T00:02:39Z``) as seconds since the epoch."""
    if not text:
        return None
    try:
        import calendar
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


def _epoch(text):
    # type: (Optional[str]) -> Optional[float]
    if not text or text in ("N/A", "Unknown", "None"):
        return None
    try:
        return float(time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return None


def _iso(text):
    # type: (Optional[str]) -> Optional[str]
    """squeue's local time (``2026-12-02T00:02:39``) in UTC, as the API writes times."""
    moment = _epoch(text)
    if moment is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))
