"""Chunked encoding: a job's output timeline cut into contiguous ranges, each
encoded alone, then joined once without a seam.

Every frame option (pattern, step, durations, layouts, burn-in) has already
made the job's output timeline: ``spec.sources`` with each image's ``repeat``.
A chunk is the range ``[start, end)`` of that timeline; :func:`chunk_spec`
slices every source to it and keeps every other setting, so a chunk's frames
are exactly the whole job's frames ``start`` to ``end - 1``.  A chunk's videos
are intermediates that join without a seam: IVF for VP9 and AV1 (one frame
per packet, keyframe first; joined here, each frame's timestamp renumbered),
MPEG-TS for H.264 (an IDR with its parameter sets first, closed GOPs; joined by
ffmpeg's concat demuxer, which keeps B-frames' two timestamps in order, as a
raw stream or MP4 chunks would not).  :func:`join` checks every chunk's frame
count and muxes each video once (``-c copy``) into its container,
``+faststart`` for MP4.  Stills (poster, contact sheet, GIF) need the whole timeline: they are
made once, by a task of their own (:func:`stills_spec`).

The job directory holds ``chunks/NNN/`` for each chunk (and ``chunks/stills/``),
each a job directory of its own for the runner (``spec.json``, ``status.json``,
logs, outputs), so a chunk is run, checked, retried and found again like a job.
"""

import os
import re
import shutil
import struct
import subprocess
import time
from math import gcd
from typing import Any, Dict, List, Optional, Tuple  # noqa: F401 (type comments)

from . import jobdir, protocol
from .spec import Chunking, Frame, Output, Source, Spec, VideoOutput  # noqa: F401

MAX_CHUNKS = 256
MIN_FRAMES = 8  # a chunk has at least this many frames (a keyframe each is its cost)
AUTO_FRAMES = 100  # "auto" gives a chunk at least this many frames...
AUTO_LOCAL_CORES = 8  # ...and splits locally only from this many cores (VP9, AV1)
MAX_ATTEMPTS = 3  # a chunk that fails is tried again alone, at most twice
CHUNKS_DIR = "chunks"
STILLS = "stills"
JOIN_TIMEOUT = 3600.0
IVF_HEADER = 32
IVF_FRAME_HEADER = 12


# -- the plan -----------------------------------------------------------------------

def requested(value):
    # type: (Any) -> Any
    """The request's ``chunks``: a whole number from 1 to MAX_CHUNKS or "auto"."""
    if value is None:
        return 1
    if value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CHUNKS:
        raise protocol.AgentError(
            protocol.BAD_REQUEST, "chunks must be a whole number from 1 to %d, or \"auto\", "
            "got %r." % (MAX_CHUNKS, value), {"field": "chunks"})
    return value


def plan(spec, asked, cores, parallel=None, nodes=None):
    # type: (Spec, Any, int, Optional[int], Optional[int]) -> Chunking
    """Cut ``spec``'s timeline into chunks: ``asked`` (a number or "auto"); ``cores``
    of this host, and for Slurm ``nodes`` the partition has and ``parallel`` (the
    host profile's cap on tasks at once)."""
    total = spec.frames_total
    videos = [output for output in spec.outputs if isinstance(output, VideoOutput)]
    slurm = spec.placement.kind == "slurm"
    if asked == "auto":
        if not videos:
            wanted = 1
        elif slurm:
            wanted = min(parallel or nodes or 1, nodes or parallel or 1)
            wanted = max(1, min(wanted, total // AUTO_FRAMES))
        elif cores >= AUTO_LOCAL_CORES and any(video.codec in ("vp9", "av1")
                                                for video in videos):
            wanted = max(1, min(cores // 4, total // AUTO_FRAMES))
        else:
            wanted = 1
    else:
        wanted = int(asked)
    note = None
    if wanted > 1 and not videos:
        note = "Not split into chunks: the job makes no video (stills are made once)."
        wanted = 1
    chosen = "%d" % wanted if asked != "auto" else "the %d \"auto\" chose" % wanted
    most = max(1, total // MIN_FRAMES)
    if wanted > most:
        note = ("Split into %d chunks rather than %s: a chunk needs at least %d frames, and "
                "the video has %d." % (most, chosen, MIN_FRAMES, total)) if most > 1 else \
            ("Not split into chunks: a chunk needs at least %d frames, and the video has %d."
             % (MIN_FRAMES, total))
        wanted = most
    gops = vp9_gops(videos)
    grid = keyframe_grid(gops)
    cuts = [total * index // wanted for index in range(1, wanted)]
    if wanted > 1 and grid:
        cuts = grid_cuts(total, wanted, grid)
        while asked == "auto" and cuts and min_chunk(cuts, total) < AUTO_FRAMES:
            cuts = grid_cuts(total, len(cuts), grid)  # "auto" keeps AUTO_FRAMES a chunk
        if len(cuts) + 1 < wanted:
            if len(gops) == 1:
                reason = ("VP9 chunks start on the video's keyframes, every %d frames (gop), "
                          "and the video has %d; a smaller gop allows more." % (grid, total))
            else:
                reason = ("VP9 chunks start on the keyframes of every VP9 video: every %d "
                          "frames, where gops %s meet, and the video has %d; the same gop "
                          "for each allows more." % (grid, " and ".join(map(str, gops)), total))
            note = "Split into %d chunks rather than %s: %s" % (len(cuts) + 1, chosen, reason) \
                if cuts else "Not split into chunks: %s" % reason
        wanted = len(cuts) + 1
    if wanted <= 1:
        return Chunking([[0, total]], asked, note, 1)
    edges = [0] + cuts + [total]
    ranges = [[edges[index], edges[index + 1]] for index in range(wanted)]
    if parallel is None:
        parallel = wanted if slurm else max(1, min(wanted, cores))
    return Chunking(ranges, asked, note, max(1, min(parallel, wanted)))


def vp9_gops(videos):
    # type: (List[VideoOutput]) -> List[int]
    """The keyframe intervals of the job's VP9 videos, each once, smallest first."""
    return sorted({video.gop for video in videos if video.codec == "vp9" and video.gop})


def keyframe_grid(gops):
    # type: (List[int]) -> Optional[int]
    """The keyframe interval every chunk must start on, or None: the VP9 videos'
    ``gops`` (their least common multiple).  libvpx keeps the frames after a
    keyframe it did not plan up to 1.4 dB below the same frames of a video without
    it, so VP9 chunks start only where the unchunked video has a keyframe too; x264
    and AV1 keep such frames within 0.5 dB and start anywhere."""
    grid = None  # type: Optional[int]
    for gop in gops:
        grid = gop if grid is None else grid * gop // gcd(grid, gop)
    return grid


def grid_cuts(total, wanted, grid):
    # type: (int, int, int) -> List[int]
    """Where ``wanted`` chunks of ``total`` frames start, each chunk after the first
    on a multiple of ``grid``: the multiple nearest each even cut, or the first after
    the previous cut that leaves a chunk MIN_FRAMES; fewer cuts when the last chunk
    would be shorter than that."""
    cuts = []  # type: List[int]
    least = -(-MIN_FRAMES // grid) * grid  # the shortest chunk on the grid
    for index in range(1, wanted):
        cut = (2 * total * index + wanted * grid) // (2 * wanted * grid) * grid
        cut = max(cut, (cuts[-1] if cuts else 0) + least)
        if total - cut < MIN_FRAMES:
            break
        cuts.append(cut)
    return cuts


def min_chunk(cuts, total):
    # type: (List[int], int) -> int
    edges = [0] + cuts + [total]
    return min(b - a for a, b in zip(edges, edges[1:]))


def split(spec):
    # type: (Spec) -> bool
    """Whether the job runs in chunks."""
    return len(spec.chunks.ranges) > 1


def local_threads(spec, cores):
    # type: (Spec, int) -> int
    """ffmpeg threads for each local chunk: the host's cores shared by those at once."""
    if spec.threads:
        return spec.threads
    return max(1, cores // max(1, spec.chunks.parallel or 1))


# -- the chunks' specs --------------------------------------------------------------

def slice_frames(frames, start, end):
    # type: (List[Frame], int, int) -> List[Frame]
    """The images of a source that fill output frames ``[start, end)``, each held for
    its share of the range; a source that ended before ``start`` gives its last
    image once (the encoder holds a source's last image to the end, as the whole
    job does)."""
    sliced = []  # type: List[Frame]
    position = 0
    for frame in frames:
        low, high = max(position, start), min(position + frame.repeat, end)
        if low < high:
            sliced.append(Frame(frame.path, frame.kind, frame.width, frame.height,
                                frame.layout, high - low))
        position += frame.repeat
        if position >= end:
            break
    if not sliced and frames:
        last = frames[-1]
        sliced.append(Frame(last.path, last.kind, last.width, last.height, last.layout, 1))
    return sliced


def chunk_spec(spec, start, end, threads=None):
    # type: (Spec, int, int, Optional[int]) -> Spec
    """The spec of the chunk ``[start, end)``: the same settings, its frames, its
    videos as intermediates (``nice`` is 0: a task inherits its coordinator's)."""
    sources = [Source(slice_frames(source.frames, start, end), source.region, source.label)
               for source in spec.sources]
    videos = [output for output in spec.outputs
              if isinstance(output, VideoOutput)]  # type: List[Output]
    return Spec(spec.frame_rate, end - start, spec.canvas, sources, videos, spec.burn_in, [],
                spec.job, spec.ffmpeg, spec.ffmpeg_fps_mode, 0, spec.placement,
                Chunking([[0, end - start]]), threads or spec.threads, frame_offset=start,
                intermediate=True)


def stills_spec(spec, threads=None):
    # type: (Spec, Optional[int]) -> Optional[Spec]
    """The spec that makes the job's stills once, over the whole timeline."""
    stills = [output for output in spec.outputs if not isinstance(output, VideoOutput)]
    if not stills:
        return None
    return Spec(spec.frame_rate, spec.frames_total, spec.canvas, spec.sources, stills,
                spec.burn_in, [], spec.job, spec.ffmpeg, spec.ffmpeg_fps_mode, 0,
                spec.placement, Chunking([[0, spec.frames_total]]), threads or spec.threads)


def intermediate_extension(output):
    # type: (VideoOutput) -> str
    return "ts" if output.codec == "h264" else "ivf"


def cost(spec, start, end):
    # type: (Spec, int, int) -> int
    """What a range costs to make, roughly: its frames, and its images decoded."""
    images = sum(len(slice_frames(source.frames, start, end)) for source in spec.sources)
    return (end - start) + images


class Task(object):
    """One unit of a chunked job's work: chunk ``index`` (or the stills)."""

    __slots__ = ("name", "index", "start", "end", "directory")

    def __init__(self, name, index, start, end, directory):
        # type: (str, Optional[int], int, int, str) -> None
        self.name = name  # "000", "001", ... or "stills"
        self.index = index  # None for the stills
        self.start = start
        self.end = end
        self.directory = directory


def tasks(job_dir, spec):
    # type: (str, Spec) -> List[Task]
    """The job's tasks, longest first (the order they are started and submitted)."""
    root = os.path.join(job_dir, CHUNKS_DIR)
    found = [Task("%03d" % index, index, start, end, os.path.join(root, "%03d" % index))
             for index, (start, end) in enumerate(spec.chunks.ranges)]
    ranked = sorted(found, key=lambda task: (-cost(spec, task.start, task.end), task.index))
    stills = stills_spec(spec)
    if stills is not None:
        # Over the whole timeline: normally the longest, so first.
        ranked.insert(0, Task(STILLS, None, 0, spec.frames_total, os.path.join(root, STILLS)))
    return ranked


def prepare(job_dir, spec, threads=None):
    # type: (str, Spec, Optional[int]) -> List[Task]
    """Write each task's directory (its spec and a queued status) unless it is there
    (a job found again keeps what its chunks did)."""
    found = tasks(job_dir, spec)
    os.makedirs(os.path.join(job_dir, CHUNKS_DIR), mode=0o700, exist_ok=True)
    for task in found:
        if os.path.exists(os.path.join(task.directory, jobdir.STATUS)):
            continue
        part = stills_spec(spec, threads) if task.index is None else \
            chunk_spec(spec, task.start, task.end, threads)
        assert part is not None
        os.makedirs(task.directory, mode=0o700, exist_ok=True)
        jobdir.write_json(os.path.join(task.directory, jobdir.SPEC), part.to_json())
        status = jobdir.queued_status(part)
        status.update({"chunk": task.index, "first_frame": task.start, "attempts": 0})
        jobdir.write_status(task.directory, status)
    return found


def reset(task):
    # type: (Task) -> Dict[str, Any]
    """Make a failed task queued again, for another attempt; its new status."""
    status = jobdir.read_status(task.directory)
    jobdir.remove_temporaries(task.directory)
    for name in os.listdir(task.directory):
        if name.startswith(("part", "out")) or name in ("ffmpeg.log", "frames"):
            path = os.path.join(task.directory, name)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.unlink(path)
                except OSError:
                    pass
    spec = Spec.from_json(jobdir.read_json(os.path.join(task.directory, jobdir.SPEC)))
    fresh = jobdir.queued_status(spec)
    fresh.update({"chunk": status.get("chunk"), "first_frame": status.get("first_frame"),
                  "attempts": status.get("attempts", 0),
                  "last_failure": status.get("message")})
    jobdir.write_status(task.directory, fresh)
    return fresh


def task_status(task):
    # type: (Task) -> Dict[str, Any]
    try:
        return jobdir.read_status(task.directory)
    except protocol.AgentError:
        return {"status": "queued", "frames_done": 0, "attempts": 0}


def chunk_view(task, status, node=None):
    # type: (Task, Dict[str, Any], Optional[str]) -> Dict[str, Any]
    """One task as the job's status shows it."""
    return {"index": task.index, "name": "stills" if task.index is None else task.name,
            "first_frame": task.start, "frames": task.end - task.start,
            "state": status.get("status", "queued"), "frames_done": status.get("frames_done", 0),
            "node": node or status.get("node"), "attempts": status.get("attempts", 0),
            "message": status.get("message"), "seconds": status.get("seconds"),
            "cpu_seconds": status.get("cpu_seconds"),
            "started": (status.get("events") or {}).get("started")}


def summary(spec, views, started):
    # type: (Spec, List[Dict[str, Any]], Optional[float]) -> Dict[str, Any]
    """frames_done, progress and ETA of a chunked job from its tasks' views: frames
    are summed over the chunks; the ETA is the work left at the rate so far,
    shared by the chunks that run at once."""
    chunks = [view for view in views if view["index"] is not None]
    total = spec.frames_total
    done = sum(min(view["frames_done"] or 0, view["frames"]) for view in chunks)
    progress = round(100.0 * done / total, 1) if total else 0.0
    eta = None
    if started is not None and done:
        elapsed = max(0.0, time.time() - started)
        eta = round(elapsed * (total - done) / done, 1)
    return {"frames_done": done, "progress": progress, "eta_seconds": eta}


# -- checking and joining -----------------------------------------------------------

def count_packets(ffmpeg, path):
    # type: (str, str) -> Optional[int]
    """How many video packets (frames) a file holds: IVF read here, anything else
    by ffmpeg's stream copy to nothing (no decoding)."""
    if path.endswith(".ivf"):
        return len(ivf_frames(path))
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-i", path,
            "-map", "0:v:0", "-c", "copy", "-f", "null", "-", "-progress", "pipe:1"]
    try:
        out = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, timeout=JOIN_TIMEOUT).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.findall(rb"^frame=(\d+)", out, re.MULTILINE)
    return int(found[-1]) if found else None


def ivf_frames(path):
    # type: (str) -> List[Tuple[int, int]]
    """``(offset, size)`` of each frame of an IVF file; ValueError if it is cut short."""
    frames = []  # type: List[Tuple[int, int]]
    with open(path, "rb") as handle:
        header = handle.read(IVF_HEADER)
        if len(header) < IVF_HEADER or header[:4] != b"DKIF":
            raise ValueError("%s is not an IVF file" % path)
        length = struct.unpack("<H", header[6:8])[0]
        handle.seek(length)
        offset = length
        while True:
            head = handle.read(IVF_FRAME_HEADER)
            if not head:
                break
            if len(head) < IVF_FRAME_HEADER:
                raise ValueError("%s ends inside a frame header" % path)
            size = struct.unpack("<I", head[:4])[0]
            frames.append((offset + IVF_FRAME_HEADER, size))
            offset += IVF_FRAME_HEADER + size
            handle.seek(offset)
        if handle.tell() != os.path.getsize(path) or offset != os.path.getsize(path):
            raise ValueError("%s ends inside a frame" % path)
    return frames


def join_ivf(parts, target):
    # type: (List[str], str) -> int
    """Concatenate IVF files into one, each frame's timestamp its place in the whole
    (one tick of the header's time base per frame, as ffmpeg writes them at -r)."""
    count = 0
    with open(target, "wb") as out:
        first = None
        for part in parts:
            with open(part, "rb") as handle:
                header = handle.read(IVF_HEADER)
                if first is None:
                    first = header
                    out.write(header)
                for offset, size in ivf_frames(part):
                    handle.seek(offset)
                    data = handle.read(size)
                    out.write(struct.pack("<IQ", size, count))
                    out.write(data)
                    count += 1
        if first is not None:  # the frame count in the header: the whole video's
            out.seek(24)
            out.write(struct.pack("<I", count))
    return count


def concat_list(parts, target):
    # type: (List[str], str) -> None
    """The concat demuxer's list of MPEG-TS chunks: it offsets each chunk's
    timestamps by the chunks before it (B-frames keep their order: TS carries
    both timestamps of every frame, unlike a raw stream)."""
    with open(target, "w") as out:
        for part in parts:
            out.write("file '%s'\n" % part.replace("'", "'\\''"))


def mux_argv(ffmpeg, spec, output, joined, target):
    # type: (str, Spec, VideoOutput, str, str) -> List[str]
    """The one stream copy from the joined intermediate into the output's container."""
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-y", "-loglevel", "error"]
    if joined.endswith(".txt"):
        argv += ["-f", "concat", "-safe", "0"]
    else:
        argv += ["-f", "ivf"]
    argv += ["-i", joined, "-map", "0:v:0", "-c", "copy"]
    if output.content_type == "video/mp4":
        argv += ["-movflags", "+faststart", "-f", "mp4"]
    else:
        argv += ["-f", "webm"]
    return argv + [target]
