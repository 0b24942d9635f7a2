"""The detached process that runs one job's ffmpeg and keeps its status file.

Started by the agent in a session of its own (``python3 agent.pyz run-job
DIR``), so it outlives the agent and the SSH connection.  SIGTERM cancels.
"""

import os
import re
import resource
import select
import signal
import subprocess
import threading
import time
from fractions import Fraction
from typing import Any, Dict, Iterator, List, Optional  # noqa: F401 (type comments)

from . import chunks, ffmpeg, jobdir, preview, protocol, text
from .spec import Spec, VideoOutput

STDERR_TAIL = 4000
FULL_DISK_BYTES = 256 * 1024
WRITE_INTERVAL = 0.5
STOP_GRACE = 0.3  # seconds a canceled ffmpeg has between SIGTERM and SIGKILL
DIAGNOSE_SECONDS = 120.0  # at most this long looking for the frame ffmpeg could not decode
# "Error while decoding stream #3:0" (5.x) or "[vist#3:0/png ...] Decoding error" (6 and later)
DECODE_ERROR = re.compile(r"(?:Error while decoding stream #|vist#)(\d+):\d+")


class Runner(object):
    def __init__(self, job_dir):
        # type: (str) -> None
        self.job_dir = job_dir
        self.spec = Spec.from_json(jobdir.read_json(self._path(jobdir.SPEC)))
        self.status = jobdir.read_json(self._path(jobdir.STATUS))  # type: jobdir.Status
        # A chunk's (or the stills') directory is chunks/NAME/ in its job's: a cancel
        # of the job is marked there.
        self.job_dir_of_task = os.path.dirname(os.path.dirname(job_dir)) \
            if "chunk" in self.status else None
        self.process = None  # type: Optional[subprocess.Popen]
        self.canceled = False
        self.signal = None  # type: Optional[int]
        self.asked = False  # the signal came from a cancel framewire asked for
        self._last_write = 0.0
        self._started = time.time()
        self.whole = None  # type: Optional[Spec]  # a chunk's job, for messages
        self.preview = None  # type: Optional[preview.PreviewReader]  # while it encodes

    def _path(self, name):
        # type: (str) -> str
        return os.path.join(self.job_dir, name)

    def _write(self, force=True):
        # type: (bool) -> None
        moment = time.time()
        if force or moment - self._last_write >= WRITE_INTERVAL:
            if not force and self.preview is not None:
                # A progress write: how much of the preview is whole now.
                self.status["preview"] = self.preview.look()
            try:
                jobdir.write_status(self.job_dir, self.status)
            except OSError:
                if force:
                    raise
                return  # a missed progress update (e.g. a full disk) is not fatal
            self._last_write = moment

    def _on_signal(self, signum, frame):
        # type: (int, Any) -> None
        self.canceled = True
        self.signal = signum
        # Asked by framewire? The mark is there before the signal is sent (and gone
        # once the temporaries are cleared, which comes before the final word).
        self.asked = self.asked or os.path.exists(self._path(jobdir.CANCEL_MARK)) or \
            (self.job_dir_of_task is not None and os.path.exists(
                os.path.join(self.job_dir_of_task, jobdir.CANCEL_MARK)))
        self._stop_encoder()

    def _stop_encoder(self):
        # type: () -> None
        """SIGTERM to ffmpeg, SIGKILL after ``STOP_GRACE``: a canceled encode's output is
        thrown away, so it must not spend seconds flushing (and +faststart rewriting) it."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        timer = threading.Timer(STOP_GRACE, _kill_if_running, (process,))
        timer.daemon = True
        timer.start()

    def run(self):
        # type: () -> int
        take_signals(self._on_signal, self.spec.nice)
        self.status.update({"status": protocol.RUNNING, "phase": "preparing", "pid": os.getpid(),
                            "message": "Preparing frames.", "node": node_name()})
        self.status["events"]["started"] = jobdir.now()
        self._write()
        try:
            segments = self._link_frames()
            if self.canceled:
                self._stopped()
            else:
                self._encode(segments)
        except Exception as error:  # the job must end with a status, whatever happened
            self._finish(protocol.FAILED, "The job failed: %s" % error)
        finally:
            jobdir.remove_temporaries(self.job_dir)
        return 0 if self.status["status"] == protocol.SUCCEEDED else 1

    def _link_frames(self):
        # type: () -> List[ffmpeg.Segment]
        """Numbered links to the frames, one directory per run of alike frames.

        The image2 demuxer reads a numbered pattern fastest, and it decodes
        every file of one input with one decoder: a run of frames that share
        kind, size and pixel layout becomes one input.  An image held for
        several frames (``durations``) is linked that many times.
        """
        root = self._path("frames")
        os.mkdir(root, 0o700)
        segments = []  # type: List[ffmpeg.Segment]
        for source_index, source in enumerate(self.spec.sources):
            key = None  # type: Any
            directory = ""
            number = 0
            extension = ""
            for frame in source.frames:
                frame_key = (frame.kind, frame.width, frame.height, frame.layout)
                if frame_key != key:
                    key = frame_key
                    directory = os.path.join(root, "s%05d" % len(segments))
                    os.mkdir(directory)
                    extension = "png" if frame.kind == "png" else "jpg"
                    segments.append(ffmpeg.Segment(source_index, os.path.join(
                        ffmpeg.pattern_escape(directory), "%08d." + extension)))
                    number = 0
                for _ in range(frame.repeat):
                    os.symlink(frame.path,
                               os.path.join(directory, "%08d.%s" % (number, extension)))
                    number += 1
                if self.canceled:
                    return segments
        return segments

    def _encode(self, segments):
        # type: (List[ffmpeg.Segment]) -> None
        spec = self.spec
        outputs = spec.outputs
        extensions = [chunks.intermediate_extension(output) if spec.intermediate
                      and isinstance(output, VideoOutput) else output.extension
                      for output in outputs]
        partials = [self._path("partial.%d.%s" % (index, extension))
                    for index, extension in enumerate(extensions)]
        previewed = preview.previewed(spec)
        preview_path = None  # type: Optional[str]
        if previewed is not None:
            preview_path = self._path(preview.file_name(previewed))
            self.preview = preview.PreviewReader(preview_path, previewed.content_type,
                                                 flush=spec.placement.kind != "local")
        argv = ffmpeg.job_argv(spec.ffmpeg, spec, segments, partials, preview_path)
        whole = None
        if self.job_dir_of_task is not None:
            whole = Spec.from_json(jobdir.read_json(os.path.join(self.job_dir_of_task,
                                                                 jobdir.SPEC)))
            self.whole = whole
        text.write_assets(self.job_dir, spec, float(Fraction(spec.frame_rate)), whole)
        total = spec.frames_total
        self.status.update({"phase": "encoding", "message": "Encoding."})
        self._write()
        with open(self._path("ffmpeg.log"), "wb") as log:
            # In the job directory: filters name the font and text files relatively,
            # so no path ever needs filter-graph escaping.
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.PIPE, stderr=log,
                                            cwd=self.job_dir)
            if self.canceled:
                self._stop_encoder()
            assert self.process.stdout is not None
            for raw in report_lines(self.process.stdout, WRITE_INTERVAL):
                if raw is None:
                    self._preview_grew()
                    continue
                key, _, value = raw.decode("ascii", "replace").strip().partition("=")
                if key == "frame" and value.isdigit():
                    self._progress(int(value), total)
                elif key == "progress":
                    self._write(force=False)  # the final status comes after the checks
            returncode = self.process.wait()
        self.preview = None  # it goes with the temporaries, whatever the outcome
        self.status["preview"] = None
        self.status["returncode"] = returncode
        missing = [output.name for output, partial in zip(outputs, partials)
                   if not os.path.isfile(partial) or os.path.getsize(partial) == 0]
        full = disk_full(self.job_dir)
        short = self.status["frames_done"] != total
        undecodable = None
        if not self.canceled and not full and (returncode != 0 or short):
            undecodable = self._undecodable(segments)  # before the frame links go
        if self.canceled or returncode != 0 or short or missing:
            # Free the space first: on a full disk the status must still be written.
            jobdir.remove_temporaries(self.job_dir)
        if self.canceled:
            self._stopped()
        elif returncode != 0:
            self.status["stderr"] = self._stderr_tail()
            if full or "No space left on device" in self.status["stderr"]:
                self._finish(protocol.FAILED, "The remote disk is full: ffmpeg could not write the "
                             "output (No space left on device in %s)." % self.job_dir)
            else:
                self._finish(protocol.FAILED, undecodable or "ffmpeg failed with exit code %d."
                             % returncode)
        elif short:
            self.status["stderr"] = self._stderr_tail()
            self._finish(protocol.FAILED, undecodable or "ffmpeg wrote %d of %d frames."
                         % (self.status["frames_done"], total))
        elif missing:
            self.status["stderr"] = self._stderr_tail()
            self._finish(protocol.FAILED, "ffmpeg wrote no %s output." % ", ".join(missing))
        elif spec.intermediate and self._short_intermediate(outputs, partials):
            jobdir.remove_temporaries(self.job_dir)
        else:
            done = []
            for output, partial, extension in zip(outputs, partials, extensions):
                final = self._path("%s.%s" % (output.name, extension))
                os.replace(partial, final)
                width, height = output.size()
                done.append({
                    "name": output.name, "kind": output.kind, "path": final,
                    "size": os.path.getsize(final), "content_type": output.content_type,
                    "width": width, "height": height,
                })
            self.status["outputs"] = done
            self.status["output"] = done[0]
            self._finish(protocol.SUCCEEDED, "Video ready." if outputs[0].kind == "video"
                         else "Outputs ready.")

    def _short_intermediate(self, outputs, partials):
        # type: (List[Any], List[str]) -> bool
        """A chunk's check of its own videos: each holds exactly its frames (the join
        runs only on complete chunks).  Ends the chunk failed if one does not."""
        total = self.spec.frames_total
        for output, partial in zip(outputs, partials):
            try:
                found = chunks.count_packets(self.spec.ffmpeg, partial)
            except (OSError, ValueError):
                found = None
            if found != total:
                self._finish(protocol.FAILED, "The chunk's %s holds %s of its %d frames."
                             % (output.name, "an unreadable number" if found is None
                                else found, total))
                return True
        return False

    def _undecodable(self, segments):
        # type: (List[ffmpeg.Segment]) -> Optional[str]
        """Which image ffmpeg could not decode, said with its path and position.

        ffmpeg skips a frame it cannot decode without naming the file; decoding
        the frame links again (the inputs its log names first) shows the gap.
        """
        try:
            with open(self._path("ffmpeg.log"), "rb") as handle:
                log = handle.read(1 << 20).decode("utf-8", "replace")
        except OSError:
            log = ""
        named = [int(number) for number in DECODE_ERROR.findall(log)]
        order = [index for index in dict.fromkeys(named) if index < len(segments)]
        order += [index for index in range(len(segments)) if index not in order]
        deadline = time.time() + DIAGNOSE_SECONDS
        for index in order:
            if self.canceled or time.time() > deadline:
                return None
            found = ffmpeg.first_undecodable(self.spec.ffmpeg, segments[index].pattern,
                                             deadline)
            if found is None:
                continue
            number, reason = found
            directory = os.path.dirname(segments[index].pattern.replace("%%", "%"))
            try:
                link = sorted(os.listdir(directory))[number]
                path = os.readlink(os.path.join(directory, link))
            except (OSError, IndexError):
                return None
            # A chunk names the image by its place in the whole job.
            return describe_frame(self.whole or self.spec, segments[index].source, path,
                                  reason)
        return None

    def _progress(self, done, total):
        # type: (int, int) -> None
        done = max(0, min(done, total))
        elapsed = time.time() - self._started
        self.status["frames_done"] = done
        self.status["progress"] = round(100.0 * done / total, 1) if total else 0.0
        self.status["eta_seconds"] = (round(elapsed * (total - done) / done, 1)
                                      if done else None)
        self._write(force=False)

    def _preview_grew(self):
        # type: () -> None
        """ffmpeg reports nothing while it drains the encoder at the end (the frames
        its lookahead held: often the last seconds of the encode), yet the preview
        grows then too: say so between reports."""
        if self.preview is None or time.time() - self._last_write < WRITE_INTERVAL:
            return
        if self.preview.look() != self.status.get("preview"):
            self._write(force=False)

    def _stderr_tail(self):
        # type: () -> str
        try:
            with open(self._path("ffmpeg.log"), "rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - STDERR_TAIL))
                return handle.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _stopped(self):
        # type: () -> None
        """The runner was signalled: a cancel framewire asked for ends the job
        canceled.  A batch job signalled without one was stopped by its scheduler
        (its time limit, preemption, someone's scancel): the runner cannot know
        which, so it leaves the status unfinished and the executor ends the job
        with the scheduler's word for it (or queues it again, when requeued)."""
        if self.asked or self.spec.placement.kind == "local":
            self._finish(protocol.CANCELED, "Canceled.")
            return
        self.status.update({"phase": "stopped", "eta_seconds": None, "pid": None,
                            "preview": None,
                            "message": "Stopped by the scheduler (signal %s); waiting for "
                                       "it to say why." % self.signal})
        self._write()

    def _finish(self, state, message):
        # type: (str, str) -> None
        jobdir.finished(self.status, state, message)
        self.status["runner_max_rss_kb"] = peak_memory_kb()
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.status["cpu_seconds"] = round(used.ru_utime + used.ru_stime, 3)
        self.status["seconds"] = round(time.time() - self._started, 3)
        if state == protocol.SUCCEEDED:
            self.status["progress"] = 100.0
        self._write()


def take_signals(handler, nice):
    # type: (Any, int) -> None
    """A runner's start: SIGTERM, SIGINT and SIGHUP cancel, and its priority is lowered
    by ``nice`` (below the agent and a server beside it; ffmpeg inherits it)."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, handler)
    if nice:
        try:
            os.nice(nice)
        except OSError:
            pass


def report_lines(pipe, quiet):
    # type: (Any, float) -> Iterator[Optional[bytes]]
    """The lines of ``pipe`` as they come, and None whenever ``quiet`` seconds pass
    without one; ends with the pipe."""
    fd = pipe.fileno()
    buffered = b""
    while True:
        if not select.select([fd], [], [], quiet)[0]:
            yield None
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            if buffered:
                yield buffered
            return
        buffered += chunk
        *lines, buffered = buffered.split(b"\n")
        for line in lines:
            yield line + b"\n"


def node_name():
    # type: () -> str
    """The node this runs on: Slurm's name for it in a batch job, else the host's."""
    return os.environ.get("SLURMD_NODENAME") or os.uname()[1]


def describe_frame(spec, source_index, path, reason):
    # type: (Spec, int, str, str) -> str
    """"Image 4 of 6 could not be decoded: PATH (why)." for a frame of the spec."""
    sources = spec.sources
    frames = sources[source_index].frames
    position = next((index for index, frame in enumerate(frames) if frame.path == path),
                    None)
    where = "" if len(sources) == 1 else " of layout source %d" % source_index
    which = "Image %d of %d%s" % (position + 1, len(frames), where) if position is not None \
        else "An image%s" % where
    return "%s could not be decoded: %s (%s)." % (which, path, reason or "ffmpeg skipped it")


def _kill_if_running(process):
    # type: (subprocess.Popen) -> None
    if process.poll() is None:
        try:
            process.kill()
        except OSError:
            pass


def disk_full(path):
    # type: (str) -> bool
    """Whether the filesystem holding ``path`` has (next to) no room left."""
    try:
        info = os.statvfs(path)
    except OSError:
        return False
    return info.f_bavail * info.f_frsize < FULL_DISK_BYTES


def peak_memory_kb():
    # type: () -> int
    """This process's peak resident memory in KiB, ffmpeg not included.

    VmHWM belongs to the process image, so unlike ru_maxrss (kept across
    exec) it does not count the agent this runner was forked from.
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(job_dir):
    # type: (str) -> int
    spec = jobdir.read_json(os.path.join(job_dir, jobdir.SPEC))
    if len((spec.get("chunks") or {}).get("ranges") or []) > 1:
        from .chunked import ChunkedRunner
        return ChunkedRunner(job_dir).run()
    return Runner(job_dir).run()
