"""The Slurm executor's reading of Slurm, against a scripted Slurm: what each answer
(and each failure to answer) makes of a job.  The real Slurm runs in
tests/server/test_slurm.py; here are the answers it cannot be made to give on
demand: a controller away, a job it forgot, out of memory, a requeue."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from agent import jobdir, protocol, slurm

JOB = "d" * 32
Answer = tuple[int, str, str]


class Slurm:
    """Scripted answers by command name; each call is recorded."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.answers: dict[str, Callable[[list[str]], Answer]] = {}
        self.clock = 1_000_000.0

    def __call__(self, argv: list[str], timeout: float = 0) -> Answer:
        self.calls.append(argv)
        answer = self.answers.get(argv[0])
        if answer is None:
            raise slurm.SlurmError(f"{argv[0]}: No such file or directory")
        return answer(argv)

    def says(self, command: str, out: str = "", status: int = 0, err: str = "") -> None:
        self.answers[command] = lambda argv: (status, out, err)

    def fails(self, command: str) -> None:
        def answer(argv: list[str]) -> Answer:
            raise slurm.SlurmError(f"{command} did not answer within 20 s")
        self.answers[command] = answer

    def count(self, command: str) -> int:
        return sum(1 for argv in self.calls if argv[0] == command)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Slurm:
    scripted = Slurm()
    monkeypatch.setattr(slurm, "run", scripted)
    return scripted


def executor(fake: Slurm, sacct: bool = False) -> slurm.SlurmExecutor:
    return slurm.SlurmExecutor(["python3", "-m", "agent", "run-job"], user="analyst",
                               sacct=sacct, clock_=lambda: fake.clock)


def job(tmp_path: Path, name: str = JOB, state: str = "queued", job_id: str | None = "4242",
        mem: str | None = None) -> str:
    job_dir = tmp_path / name
    job_dir.mkdir()
    jobdir.write_json(str(job_dir / jobdir.SPEC), {"placement": {"kind": "slurm", "mem": mem}})
    jobdir.write_status(str(job_dir), {"id": name, "status": state, "phase": None,
                                       "message": "Queued.", "eta_seconds": None,
                                       "events": {"created": jobdir.now(), "started": None,
                                                  "completed": None}})
    jobdir.write_json(str(job_dir / slurm.SLURM_FILE), {
        "name": slurm.NAME_PREFIX + name, "job_ids": [job_id] if job_id else [],
        "submitted": 1_000_000.0})
    return str(job_dir)


def row(job_id: str = "4242", state: str = "PENDING", reason: str = "Priority",
        nodes: str = "", start: str = "2026-12-02T03:00:00", name: str = JOB,
        limit: str = "10:00") -> str:
    return "|".join([job_id, job_id, "N/A", slurm.NAME_PREFIX + name, state, reason, nodes,
                     start, "2026-12-02T01:00:00", "debug", limit])


def poll(executor_: slurm.SlurmExecutor, job_dir: str) -> dict[str, Any]:
    return executor_.poll(job_dir, jobdir.read_status(job_dir))


def test_a_pending_job_is_queued_with_its_reason_in_words(fake: Slurm,
                                                          tmp_path: Path) -> None:
    fake.says("squeue", row(reason="Priority") + "\n")
    job_dir = job(tmp_path)
    shown = poll(executor(fake), job_dir)
    assert (shown["status"], shown["phase"]) == ("queued", "waiting in queue")
    assert shown["message"] == "Waiting in the Slurm queue: waiting behind higher-priority jobs."
    scheduler = shown["scheduler"]
    assert scheduler["job_ids"] == ["4242"] and scheduler["partition"] == "debug"
    assert scheduler["reason"] == "Priority"
    assert scheduler["expected_start"].endswith("Z") and scheduler["submitted_at"].endswith("Z")
    assert scheduler["nodes"] == [] and scheduler["started_at"] is None
    for reason, words in (("Resources", "waiting for free nodes"),
                          ("QOSMaxJobsPerUserLimit", "you are at your QOS job limit"),
                          ("SomethingNew", "SomethingNew"),
                          ("Nodes required for job are DOWN, DRAINED or reserved for jobs in "
                           "higher priority partitions", "the nodes it needs are not available "
                           "(down or drained), or are reserved for jobs in higher-priority "
                           "partitions"),
                          ("ReqNodeNotAvail, UnavailableNodes:n[1-2]",
                           "the nodes it needs are not available (down or drained): n[1-2]")):
        fake.says("squeue", row(reason=reason) + "\n")
        assert poll(executor(fake), job_dir)["scheduler"]["reason_text"] == words


def test_one_squeue_answers_for_every_job_and_looks_back_off(fake: Slurm,
                                                             tmp_path: Path) -> None:
    names = [str(index) * 32 for index in range(1, 6)]
    jobs = [job(tmp_path, name, job_id=str(100 + index)) for index, name in enumerate(names)]
    fake.says("squeue", "".join(row(str(100 + index), name=name) + "\n"
                                for index, name in enumerate(names)))
    looker = executor(fake)
    found = looker.poll_all([(job_dir, jobdir.read_status(job_dir)) for job_dir in jobs])
    assert len(found) == 5 and fake.count("squeue") == 1
    assert all(status["status"] == "queued" for status in found.values())
    # Nothing changes: the looks space out, 2 s doubling to 30 s.
    moments = []
    for _ in range(200):
        fake.clock += 1
        before = fake.count("squeue")
        looker.poll_all([(job_dir, jobdir.read_status(job_dir)) for job_dir in jobs])
        if fake.count("squeue") > before:
            moments.append(fake.clock)
    gaps = [later - earlier for earlier, later in zip(moments, moments[1:], strict=False)]
    assert gaps[:4] == [4, 8, 16, 30] and set(gaps[4:]) == {30}
    # A change brings the looks back to every 2 s.
    fake.says("squeue", row("100", state="RUNNING", reason="None", nodes="n1",
                            name=names[0]) + "\n")
    fake.clock += 30
    looker.poll_all([(jobs[0], jobdir.read_status(jobs[0]))])
    fake.clock += 2
    before = fake.count("squeue")
    looker.poll_all([(jobs[0], jobdir.read_status(jobs[0]))])
    assert fake.count("squeue") == before + 1
    assert fake.count("scontrol") == 0, "squeue answered for all of them"


def test_a_slurm_that_does_not_answer_keeps_the_last_known_state(fake: Slurm,
                                                                 tmp_path: Path) -> None:
    job_dir = job(tmp_path)
    fake.says("squeue", row(reason="Resources") + "\n")
    looker = executor(fake)
    assert poll(looker, job_dir)["scheduler"]["reason"] == "Resources"
    for broken in ("timeout", "exit", "controller away"):
        fresh = executor(fake)  # a new agent: nothing in memory
        if broken == "timeout":
            fake.fails("squeue")
            fake.fails("scontrol")
        elif broken == "exit":
            fake.says("squeue", status=1, err="squeue: error: Socket timed out")
            fake.says("scontrol", status=1, err="slurm_load_jobs error: Socket timed out")
        else:
            fake.says("squeue", "")
            fake.says("scontrol", status=1, err="slurm_load_jobs error: Unable to contact "
                                                "slurm controller (connect failure)")
        for _ in range(3):
            fake.clock += 60
            shown = poll(fresh, job_dir)
            assert shown["status"] == "queued", broken
            assert shown["scheduler"]["reason"] == "Resources", broken
        assert jobdir.read_status(job_dir)["status"] == "queued", "nothing was ended"


def test_a_job_slurm_forgot_is_never_taken_as_done(fake: Slurm, tmp_path: Path) -> None:
    job_dir = job(tmp_path, state="running")
    Path(job_dir, "slurm-4242.out").write_text("framewire: starting\nBus error\n")
    fake.says("squeue", "")
    fake.says("scontrol", status=1, err="slurm_load_jobs error: Invalid job id specified")
    shown = poll(executor(fake), job_dir)
    assert shown["status"] == "failed"
    assert shown["message"].startswith("Slurm lost track of job 4242: it no longer knows it")
    assert "Bus error" in shown["stderr"]
    assert jobdir.read_status(job_dir)["status"] == "failed"


def test_sacct_has_the_last_word_on_a_job_squeue_and_scontrol_forgot(
        fake: Slurm, tmp_path: Path) -> None:
    job_dir = job(tmp_path, state="running")
    fake.says("squeue", "")
    fake.says("scontrol", status=1, err="slurm_load_jobs error: Invalid job id specified")
    fake.says("sacct", "4242|TIMEOUT|0:0|n2|00:10:00\n")
    shown = poll(executor(fake, sacct=True), job_dir)
    assert shown["status"] == "failed"
    assert shown["message"] == ("Slurm stopped it at its time limit of 00:10:00; ask for a "
                                "longer time (slurm.time), or fewer frames per video.")


@pytest.mark.parametrize(("state", "extra", "message"), [
    ("TIMEOUT", {}, "Slurm stopped it at its time limit of 00:10:00; ask for a longer time "
                    "(slurm.time), or fewer frames per video."),
    ("OUT_OF_MEMORY", {"mem": "4G"}, "Slurm stopped it: it ran out of memory (limit 4G); "
                                     "ask for more (slurm.mem)."),
    ("NODE_FAIL", {}, "The node it ran on (n2) failed; make the video again."),
    ("CANCELLED", {}, "Slurm job 4242 was cancelled outside framewire (scancel or an "
                      "administrator)."),
    ("FAILED", {}, "The Slurm job 4242 failed (exit code 126) before the runner finished."),
])
def test_an_end_without_the_runners_word_is_a_failure_in_slurms_words(
        fake: Slurm, tmp_path: Path, state: str, extra: dict[str, str], message: str) -> None:
    job_dir = job(tmp_path, state="running", **extra)
    fake.says("squeue", row(state=state, reason="None", nodes="n2") + "\n")
    fake.says("scontrol", f"JobId=4242 JobState={state} ExitCode=126:0 NodeList=n2\n")
    shown = poll(executor(fake), job_dir)
    assert (shown["status"], shown["message"]) == ("failed", message)
    assert shown["scheduler"]["state"] == state


def test_the_runners_final_status_is_the_final_word(fake: Slurm, tmp_path: Path) -> None:
    job_dir = job(tmp_path, state="running")
    status = jobdir.read_status(job_dir)
    jobdir.finished(status, protocol.SUCCEEDED, "Done.")
    jobdir.write_status(job_dir, status)
    fake.says("squeue", row(state="FAILED", reason="NonZeroExitCode", nodes="n1") + "\n")
    assert poll(executor(fake), job_dir)["status"] == "succeeded"


def test_a_job_that_ended_between_two_looks_has_its_node_filled_in(
        fake: Slurm, tmp_path: Path) -> None:
    job_dir = job(tmp_path)
    fake.says("squeue", row(reason="None") + "\n")
    looker = executor(fake)
    assert poll(looker, job_dir)["scheduler"]["nodes"] == []
    status = jobdir.read_status(job_dir)  # the runner ran and ended before the next look
    jobdir.finished(status, protocol.SUCCEEDED, "Video ready.")
    jobdir.write_status(job_dir, status)
    fake.says("scontrol", "JobId=4242 JobState=COMPLETED Reason=None NodeList=n2 "
                          "StartTime=2026-12-02T01:00:05 SubmitTime=2026-12-02T01:00:00\n")
    shown = poll(looker, job_dir)
    assert shown["status"] == "succeeded"
    assert (shown["scheduler"]["state"], shown["scheduler"]["nodes"]) == ("COMPLETED", ["n2"])
    assert shown["scheduler"]["started_at"].endswith("Z")
    calls = fake.count("scontrol")
    poll(looker, job_dir)
    assert fake.count("scontrol") == calls, "settled once"


def test_a_cancel_framewire_asked_for_ends_canceled(fake: Slurm, tmp_path: Path) -> None:
    job_dir = job(tmp_path, state="running")
    jobdir.mark_cancel(job_dir)
    fake.says("squeue", row(state="CANCELLED", reason="None", nodes="n1") + "\n")
    assert poll(executor(fake), job_dir)["status"] == "canceled"


def test_a_requeued_job_waits_again_rather_than_failing(fake: Slurm, tmp_path: Path) -> None:
    job_dir = job(tmp_path, state="running")
    # squeue's answer from before the runner started is stale, not a requeue.
    fake.says("squeue", row(state="PENDING", reason="None") + "\n")
    looker = executor(fake)
    assert poll(looker, job_dir)["status"] == "running"
    fake.clock += 0.1
    before = fake.count("squeue")
    poll(looker, job_dir)
    assert fake.count("squeue") == before + 1, "a stale answer is asked again at once"
    # Requeued: the runner was stopped by Slurm's signal, and the job is pending again.
    status = jobdir.read_status(job_dir)
    status["phase"] = "stopped"
    jobdir.write_status(job_dir, status)
    fake.says("squeue", row(state="PENDING", reason="BeginTime") + "\n")
    shown = poll(executor(fake), job_dir)
    assert (shown["status"], shown["phase"]) == ("queued", "waiting in queue")
    assert shown["message"] == ("Requeued by Slurm; waiting in the queue again: waiting for "
                                "its start time.")
    fake.says("squeue", row(state="REQUEUED", reason="None") + "\n")
    status["phase"] = "encoding"
    jobdir.write_status(job_dir, status)
    assert poll(executor(fake), job_dir)["status"] == "queued"


def test_an_agent_that_died_before_recording_the_id_finds_the_job_by_name(
        fake: Slurm, tmp_path: Path) -> None:
    job_dir = job(tmp_path, job_id=None)
    fake.says("squeue", row("5151", state="RUNNING", reason="None", nodes="n1") + "\n")
    shown = poll(executor(fake), job_dir)
    assert shown["scheduler"]["job_ids"] == ["5151"] and shown["scheduler"]["nodes"] == ["n1"]
    assert json.loads(Path(job_dir, slurm.SLURM_FILE).read_text())["job_ids"] == ["5151"]
    # A submission that never became a job: failed once Slurm has had its minute.
    lost = job(tmp_path, "e" * 32, job_id=None)
    fake.says("squeue", "")
    assert poll(executor(fake), lost)["status"] == "queued"
    fake.clock += slurm.LOST_AFTER + 1
    shown = poll(executor(fake), lost)
    assert shown["status"] == "failed"
    assert shown["message"] == (f"The submission to Slurm did not finish: no job is named "
                                f"framewire-{'e' * 32}.")


def test_the_batch_script_quotes_every_word(tmp_path: Path) -> None:
    """The script runs set-up commands and the runner with their words as given: no
    word is interpreted by the shell."""
    words = ["it's", "$HOME", "`id`", "a b", "; rm -rf ~", "*"]
    setup = [["printf", "%s\\n", *words]]
    runner = ["python3", "-c", "import json, sys; print(json.dumps(sys.argv[1:]))", *words]
    job_dir = tmp_path / "job $(x) 'q'"
    job_dir.mkdir()
    script = slurm.SlurmExecutor(runner, setup=setup, user="analyst").script(str(job_dir))
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30,
                          check=True)
    lines = done.stdout.splitlines()
    assert lines[:len(words)] == words
    assert json.loads(lines[-1]) == [*words, str(job_dir)]
    failing = slurm.SlurmExecutor(runner, setup=[["false"]], user="analyst").script(
        str(job_dir))
    done = subprocess.run(["sh", "-c", failing], capture_output=True, text=True, timeout=30)
    assert done.returncode == 126
    assert done.stderr == "framewire: the set-up command 1 failed\n"


def test_sbatch_gets_a_job_name_of_its_own_and_only_checked_options(tmp_path: Path) -> None:
    from agent.spec import Placement

    placement = Placement("slurm", "short", "30", 4, "8G", "proj1", None, ["--exclusive"])
    argv = slurm.SlurmExecutor(["runner"], user="analyst").sbatch_argv(
        str(tmp_path / JOB), placement)
    assert argv[:3] == ["sbatch", "--parsable", f"--job-name=framewire-{JOB}"]
    assert "--partition=short" in argv and "--time=30" in argv
    assert "--cpus-per-task=4" in argv and "--mem=8G" in argv and "--account=proj1" in argv
    assert not any(word.startswith("--qos") for word in argv)
    assert argv[-2:] == ["--exclusive", str(tmp_path / JOB / "job.sbatch")]


def test_slurm_times_read_as_slurm_writes_them() -> None:
    assert [slurm.seconds(text) for text in ("30", "5:00", "1:00:00", "2-00", "1-01:02:03",
                                             "UNLIMITED", "soon")] == [
        1800, 300, 3600, 172800, 90123, None, None]
    assert slurm.clock(1800) == "00:30:00" and slurm.clock(90123) == "1-01:02:03"
    assert slurm.clock(None) == "UNLIMITED"
    assert time.strftime("%Y") in slurm._iso(time.strftime("%Y-%m-%dT%H:%M:%S"))


# -- chunked jobs: one array, a join, retries -----------------------------------------

def chunked_job(tmp_path: Path, count: int = 3) -> tuple[str, Any]:
    """A real chunked job directory (agent/chunks.py) submitted as array 50, join 51."""
    from agent import chunks
    from agent.spec import Canvas, Frame, Placement, Source, Spec, VideoOutput

    frames = [Frame(f"/d/{index}.png", "png", 64, 48, "rgb") for index in range(30)]
    video = VideoOutput("video", "video/mp4", "mp4", 64, 48, "contain", "black", "h264",
                        "libx264", 23, None, "medium", None, "yuv420p", None)
    spec = Spec("25", 30, Canvas(64, 48, "contain", "black"), [Source(frames)], [video],
                job=JOB, placement=Placement("slurm"))
    spec.chunks = chunks.plan(spec, count, cores=2)
    job_dir = tmp_path / JOB
    job_dir.mkdir()
    jobdir.write_json(str(job_dir / jobdir.SPEC), spec.to_json())
    jobdir.write_status(str(job_dir), jobdir.queued_status(spec))
    found = chunks.prepare(str(job_dir), spec)
    for task in found:
        told = chunks.task_status(task)
        told["attempts"] = 1
        jobdir.write_status(task.directory, told)
    jobdir.write_json(str(job_dir / slurm.SLURM_FILE), {
        "name": slurm.NAME_PREFIX + JOB, "job_ids": ["50", "51"], "submitted": 1_000_000.0,
        "chunked": True, "arrays": ["50"], "join": "51",
        "tasks": {task.name: ["50", str(number)] for number, task in enumerate(found)}})
    return str(job_dir), found


def task_row(array: str, task: str, state: str, nodes: str = "n1") -> str:
    return "|".join([f"{array}_{task}", array, task, slurm.NAME_PREFIX + JOB, state, "None",
                     nodes, "2026-12-02T01:00:00", "2026-12-02T01:00:00", "debug", "10:00"])


def join_row(job_id: str = "51", state: str = "PENDING", reason: str = "Dependency") -> str:
    return "|".join([job_id, job_id, "N/A", slurm.NAME_PREFIX + JOB + "-join", state, reason,
                     "", "N/A", "2026-12-02T01:00:00", "debug", "10:00"])


def sbatch_ids(fake: Slurm, first: int) -> list[list[str]]:
    submitted: list[list[str]] = []
    counter = iter(range(first, first + 100))

    def answer(argv: list[str]) -> Answer:
        submitted.append(argv)
        return (0, f"{next(counter)}\n", "")
    fake.answers["sbatch"] = answer
    return submitted


def finish(task: Any, state: str, message: str = "", frames_done: int = 10) -> None:
    told = json.loads(Path(task.directory, jobdir.STATUS).read_text())
    told.update({"status": state, "message": message, "frames_done": frames_done,
                 "node": "n1"})
    jobdir.write_status(task.directory, told)


def test_a_task_slurm_ended_without_its_chunk_is_submitted_again_alone(
        fake: Slurm, tmp_path: Path) -> None:
    job_dir, found = chunked_job(tmp_path)
    finish(found[0], "succeeded")
    finish(found[1], "running", frames_done=4)
    # Task 2's runner was killed (scancel): Slurm says CANCELLED, its chunk says running.
    finish(found[2], "running", frames_done=2)
    fake.says("squeue", "\n".join([task_row("50", "0", "COMPLETED"),
                                   task_row("50", "1", "RUNNING", "n2"),
                                   task_row("50", "2", "CANCELLED"), join_row()]) + "\n")
    fake.says("scancel")
    submitted = sbatch_ids(fake, 60)
    shown = poll(executor(fake), job_dir)
    assert shown["status"] == "running" and shown["phase"] == "encoding"
    array, join = submitted
    assert "--array=2" in array  # the one task, alone
    depends = next(word for word in join if word.startswith("--dependency="))
    assert depends == "--dependency=afterok:60,afterany:50"  # 50 still runs task 1
    assert "--kill-on-invalid-dep=yes" in join
    # The old join is cancelled once the new one exists.
    commands = [argv[:2] for argv in fake.calls if argv[0] in ("sbatch", "scancel")]
    assert commands[-1] == ["scancel", "51"] and len(commands) == 3
    record = json.loads(Path(job_dir, slurm.SLURM_FILE).read_text())
    assert record["tasks"][found[2].name] == ["60", "2"] and record["join"] == "61"
    assert record["job_ids"] == ["50", "60", "61"]
    again = json.loads(Path(found[2].directory, jobdir.STATUS).read_text())
    assert (again["status"], again["attempts"]) == ("queued", 2)
    assert shown["frames_done"] == 10 + 4  # the retried chunk starts over
    views = {view["name"]: view for view in shown["chunks"]}
    assert views[found[1].name]["node"] == "n2"


def test_a_task_that_keeps_failing_fails_the_job_and_cancels_the_rest(
        fake: Slurm, tmp_path: Path) -> None:
    job_dir, found = chunked_job(tmp_path)
    finish(found[1], "failed", "Image 12 of 30 could not be decoded: /d/11.png (bad).")
    told = json.loads(Path(found[1].directory, jobdir.STATUS).read_text())
    told["attempts"] = 3
    jobdir.write_status(found[1].directory, told)
    fake.says("squeue", "\n".join([task_row("50", "0", "RUNNING"),
                                   task_row("50", "1", "FAILED"),
                                   task_row("50", "2", "PENDING"), join_row()]) + "\n")
    fake.says("scancel")
    submitted = sbatch_ids(fake, 60)
    shown = poll(executor(fake), job_dir)
    assert shown["status"] == "failed" and submitted == []
    index = found[1].index
    start, end = found[1].start + 1, found[1].end
    assert shown["message"] == (f"Chunk {index} (frames {start}-{end}) failed 3 times; the "
                                "last time: Image 12 of 30 could not be decoded: /d/11.png "
                                "(bad).")
    assert ["scancel", "50", "51"] in fake.calls


def test_a_join_slurm_cancelled_after_every_chunk_is_done_is_submitted_again(
        fake: Slurm, tmp_path: Path) -> None:
    job_dir, found = chunked_job(tmp_path)
    for task in found:
        finish(task, "succeeded")
    fake.says("squeue", "\n".join([task_row("50", str(n), "COMPLETED") for n in range(3)]
                                  + [join_row(state="CANCELLED",
                                              reason="DependencyNeverSatisfied")]) + "\n")
    fake.says("scancel")
    submitted = sbatch_ids(fake, 70)
    shown = poll(executor(fake), job_dir)
    assert shown["status"] != "failed" and shown["phase"] == "joining"
    assert len(submitted) == 1 and not any(word.startswith("--dependency")
                                           for word in submitted[0])
    assert json.loads(Path(job_dir, slurm.SLURM_FILE).read_text())["join"] == "70"


def test_a_running_join_writes_the_status_itself(fake: Slurm, tmp_path: Path) -> None:
    job_dir, found = chunked_job(tmp_path)
    for task in found:
        finish(task, "succeeded")
    status = jobdir.read_status(job_dir)
    status.update({"status": "running", "phase": "joining", "join_started": True,
                   "message": "Joining 3 chunks."})
    jobdir.write_status(job_dir, status)
    fake.says("squeue", "\n".join([task_row("50", str(n), "COMPLETED") for n in range(3)]
                                  + [join_row(state="RUNNING", reason="None")]) + "\n")
    submitted = sbatch_ids(fake, 70)
    shown = poll(executor(fake), job_dir)
    assert (shown["phase"], shown["message"]) == ("joining", "Joining 3 chunks.")
    assert submitted == []
    assert jobdir.read_status(job_dir)["message"] == "Joining 3 chunks."  # not overwritten
