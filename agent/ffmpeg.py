"""Find the remote ffmpeg, describe it, and build encoder command lines.

Everything here produces argv lists: no string ever reaches a shell.
"""

import os
import re
import shutil
import subprocess
import tempfile
from typing import Any, Dict, List, NamedTuple, Optional, Tuple, Union  # noqa: F401

from . import preview, protocol, text
from .filtergraph import Graph
from .spec import (  # noqa: F401
    Canvas,
    ContactSheetOutput,
    GifOutput,
    Output,
    PosterOutput,
    Region,
    Source,
    Spec,
    VideoOutput,
)

# Encoders framewire knows how to drive, by the codec name it exposes.
KNOWN_ENCODERS = {
    "h264": ["libx264"],
    "vp9": ["libvpx-vp9"],
    "av1": ["libsvtav1", "libaom-av1", "librav1e"],
}
CONTENT_TYPE_CODECS = {"video/mp4": "h264", "video/webm": "vp9"}
# Filters that draw text: labels and frame numbers (libfreetype), file names (libass).
TEXT_FILTERS = ("drawtext", "subtitles")


# Where ffmpeg often lives when it is not on PATH (a login shell without the
# site's profile, a module tree, a user's own build).
COMMON_PLACES = ("~/bin/ffmpeg", "~/.local/bin/ffmpeg", "/usr/local/bin/ffmpeg",
                 "/opt/ffmpeg/bin/ffmpeg", "/opt/ffmpeg*/bin/ffmpeg", "/opt/*/ffmpeg*/bin/ffmpeg",
                 "/usr/local/ffmpeg*/bin/ffmpeg", "/opt/homebrew/bin/ffmpeg", "/usr/bin/ffmpeg",
                 "/snap/bin/ffmpeg")


def find_ffmpeg(work_dir=None):
    # type: (Optional[str]) -> Optional[str]
    """``$FRAMEWIRE_FFMPEG`` if set, else ``ffmpeg`` on ``PATH``, else the usual
    places, else one the server provided in the work directory."""
    import glob

    configured = os.environ.get("FRAMEWIRE_FFMPEG")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    found = shutil.which("ffmpeg")
    if found:
        return found
    places = [os.path.expanduser(place) for place in COMMON_PLACES]
    if work_dir:
        places.append(os.path.join(work_dir, "ffmpeg-*[0-9a-f]"))
    for place in places:
        for candidate in sorted(glob.glob(place), reverse=True):
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
    return None


def describe(path):
    # type: (Optional[str]) -> Dict[str, Any]
    """Version and usable encoders of the ffmpeg at ``path``."""
    if path is None:
        return {"path": None, "version": None, "encoders": {}, "filters": [],
                "fps_mode": False}
    version = _run([path, "-hide_banner", "-version"]).split("\n", 1)[0]
    listing = _run([path, "-hide_banner", "-encoders"])
    names = set(re.findall(r"^\s*V\S*\s+(\S+)", listing, re.MULTILINE))
    encoders = {}
    for codec, candidates in KNOWN_ENCODERS.items():
        found = [name for name in candidates if name in names]
        if found:
            encoders[codec] = found[0]
    match = re.match(r"ffmpeg version (\S+)", version)
    filter_list = _run([path, "-hide_banner", "-filters"])
    filters = sorted(name for name in TEXT_FILTERS
                     if re.search(r"^\s*\S+\s+%s\s" % name, filter_list, re.MULTILINE))
    # -fps_mode (5.1 and later) sets frame timing per output; older ones only -vsync.
    fps_mode = "-fps_mode" in _run([path, "-hide_banner", "-h", "long"])
    return {"path": path, "version": match.group(1) if match else version,
            "encoders": encoders, "filters": filters, "fps_mode": fps_mode}


def _run(argv):
    # type: (List[str]) -> str
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        out, _ = proc.communicate(timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.decode("utf-8", "replace")


def require(ffmpeg):
    # type: (Dict[str, Any]) -> str
    """The path of the remote ffmpeg, or an AgentError saying there is none."""
    if not ffmpeg.get("path"):
        raise protocol.AgentError(
            protocol.NO_FFMPEG, "ffmpeg was not found on the remote host.",
            {"hint": "Install ffmpeg on the remote host or put it on PATH."})
    return str(ffmpeg["path"])


def pattern_escape(path):
    # type: (str) -> str
    """Escape ``%`` so image2 does not read a directory name as a pattern."""
    return path.replace("%", "%%")


Segment = NamedTuple("Segment", [
    ("source", int),   # the index of the spec's source whose frames these are
    ("pattern", str),  # image2 pattern of numbered links, e.g. ".../s00000/%08d.png"
])
"""One ffmpeg input: frames of one source that one decoder can read (same kind, size
and pixel layout)."""

COLOUR_TAGS = ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
               "-color_range", "tv"]


def fit_filters(width, height, fit, background):
    # type: (int, int, str, str) -> List[str]
    """Fit any frame into ``width``x``height``: pad (contain), crop (cover) or stretch."""
    if fit == "cover":
        return ["scale=%d:%d:force_original_aspect_ratio=increase" % (width, height),
                "crop=%d:%d" % (width, height), "setsar=1"]
    if fit == "stretch":
        return ["scale=%d:%d" % (width, height), "setsar=1"]
    return ["scale=%d:%d:force_original_aspect_ratio=decrease" % (width, height),
            "pad=%d:%d:(ow-iw)/2:(oh-ih)/2:color=%s" % (width, height, background),
            "setsar=1"]


def _select(frames):
    # type: (List[int]) -> str
    return "select='%s'" % "+".join("eq(n\\,%d)" % n for n in frames)


def _output_chain(graph, branch, output, canvas, frame_rate):
    # type: (Graph, str, Output, Canvas, str) -> str
    """Filters from ``branch`` (of the shared RGB canvas) to what one output encodes;
    returns the link its encoder reads."""
    resize = [] if (output.width, output.height) == (canvas.width, canvas.height) \
        and output.fit == "contain" \
        else fit_filters(output.width, output.height, output.fit, output.background)
    if isinstance(output, VideoOutput):
        return graph.link([branch], resize + ["scale=out_color_matrix=bt709:out_range=tv",
                                              "format=%s" % output.pixel_format], "o")
    if isinstance(output, PosterOutput):
        # Frame 0 too, overwritten by the chosen one (-update 1): an output whose
        # encoder has no frame yet holds ffmpeg back from every other output.
        return graph.link([branch], [_select(sorted({0, output.frame}))] + resize, "o")
    if isinstance(output, ContactSheetOutput):
        # The tile comes out at the end; the first frame, sized like the sheet and
        # written first (-update 1 overwrites it), lets the other outputs go on.
        width, height = output.width, output.height
        cells, first = graph.add([branch], ["split"], [graph.label("cells"),
                                                       graph.label("first")])
        sheet = graph.link([cells], [_select(output.frames)] + fit_filters(
            width, height, output.fit, output.background) + [
                "tile=%dx%d" % (output.columns, output.rows)], "sheet")
        placeholder = graph.link([first], ["trim=end_frame=1"] + fit_filters(
            width * output.columns, height * output.rows, output.fit, output.background),
            "placeholder")
        return graph.link([placeholder, sheet], ["concat=n=2:v=1:a=0", "setpts=N"], "o")
    assert isinstance(output, GifOutput)
    # Per-frame palettes keep memory flat (no whole-video palette pass).
    steps = ["fps=%s" % output.frame_rate] if output.frame_rate != frame_rate else []
    frames, paletted = graph.add([branch], steps + (resize or ["null"]) + ["split"],
                                 [graph.label("gif"), graph.label("gif")])
    palette = graph.link([frames], ["palettegen=stats_mode=single"], "palette")
    return graph.link([paletted, palette], ["paletteuse=new=1"], "o")


def _codec_args(output, fps_mode, threads=None):
    # type: (Output, bool, Optional[int]) -> List[str]
    if isinstance(output, (PosterOutput, ContactSheetOutput)):
        codec = ["-c:v", "png"] if output.content_type == "image/png" \
            else ["-c:v", "mjpeg", "-q:v", "2"]
        # Frames pass as they come: a still must not be encoded again for every
        # frame time between the ones it takes (-update 1 keeps the last).
        timing = ["-fps_mode", "passthrough"] if fps_mode else []
        return codec + timing + ["-update", "1", "-f", "image2"]
    if isinstance(output, GifOutput):
        return ["-c:v", "gif", "-loop", str(output.loop), "-f", "gif"]
    assert isinstance(output, VideoOutput)
    encoder = output.encoder
    args = ["-c:v", encoder, "-pix_fmt", output.pixel_format]
    quality = output.crf or 0  # None only beside a bitrate, which is used instead
    speed = output.speed or 0  # set for every encoder but libx264
    if encoder == "libx264":
        args += ["-preset", str(output.preset)]
        args += ["-b:v", output.bitrate] if output.bitrate else ["-crf", str(quality)]
    elif encoder == "libvpx-vp9":
        args += ["-row-mt", "1", "-deadline", "good", "-cpu-used", str(speed)]
        args += ["-b:v", output.bitrate] if output.bitrate \
            else ["-crf", str(quality), "-b:v", "0"]
    elif encoder == "libsvtav1":
        args += ["-preset", str(speed)]
        args += ["-b:v", output.bitrate] if output.bitrate \
            else ["-crf", str(max(1, quality))]
    elif encoder == "libaom-av1":
        args += ["-cpu-used", str(min(8, speed)), "-row-mt", "1"]
        args += ["-b:v", output.bitrate] if output.bitrate \
            else ["-crf", str(quality), "-b:v", "0"]
    else:  # librav1e
        args += ["-speed", str(min(10, speed))]
        args += ["-b:v", output.bitrate] if output.bitrate \
            else ["-qp", str(min(255, quality * 4))]
    if output.gop:
        args += ["-g", str(output.gop)]
        if encoder == "libvpx-vp9":
            # min = max: keyframes on the grid only, none at a scene cut (chunks
            # start on the grid: agent/chunks.py keyframe_grid).
            args += ["-keyint_min", str(output.gop)]
    if threads:
        args += ["-threads", str(threads)]
    return args + COLOUR_TAGS


def _destination(output, path, intermediate=False, preview_path=None):
    # type: (Output, str, bool, Optional[str]) -> List[str]
    """The end of an output's arguments: its container (a video's) and file; with
    ``preview_path``, the tee muxer writing the growing preview there as well."""
    if not isinstance(output, VideoOutput):
        return [path]  # the still and GIF formats are among their codec arguments
    if intermediate:
        # A chunk (agent/chunks.py): a stream that joins by concatenation. x264's
        # GOPs are closed and its first frame an IDR with the parameter sets.
        return (["-f", "mpegts"] if output.codec == "h264" else ["-f", "ivf"]) + [path]
    if preview_path is not None:
        return preview.tee_args(output, path, preview_path)
    if output.content_type == "video/mp4":
        return ["-movflags", "+faststart", "-f", "mp4", path]
    return ["-f", "webm", path]


def _source(graph, spec, segments, source_index):
    # type: (Graph, Spec, List[Segment], int) -> Tuple[List[str], List[str]]
    """Fit each segment of a source onto its region or the canvas (a chain each), and
    return the inputs and filters of the chain that joins them, renumbers the frames,
    holds the last to the end and draws the source's text, for the caller to end.

    Frames are numbered afresh at the frame rate: a one-image input has no
    duration, so concat alone would give consecutive segments the same
    timestamps and ffmpeg would drop them.
    """
    source = spec.sources[source_index]
    area = source.region or spec.canvas  # type: Union[Region, Canvas]
    fit = fit_filters(area.width, area.height, area.fit, area.background)
    fitted = [graph.link(["%d:v" % index], fit + ["format=rgb24"], "v")
              for index, segment in enumerate(segments) if segment.source == source_index]
    filters = ["concat=n=%d:v=1:a=0" % len(fitted)] if len(fitted) > 1 else []
    filters.append("setpts=N/(%s*TB)" % spec.frame_rate)
    hold = spec.frames_total - source.frame_count()
    if hold > 0:
        filters.append("tpad=stop_mode=clone:stop=%d" % hold)
    if source.label:
        filters.append(text.label_filter(source_index, text.font_size(spec)))
    if source.region is None:  # the only source: burn-in goes on it
        filters += text.burn_in_filters(spec)
    return fitted, filters


def _composition(graph, spec, placed):
    # type: (Graph, Spec, List[str]) -> Tuple[List[str], List[str]]
    """Overlay every source (``placed[i]`` is source i's link) at its region, lowest
    ``z`` first, on a plain canvas; the last overlay's chain is left for the caller
    to end, as :func:`_source` leaves its."""
    canvas = spec.canvas
    rate = spec.frame_rate
    regions = [_placed(source) for source in spec.sources]
    below = graph.link([], ["color=c=%s:s=%dx%d:r=%s" % (canvas.background, canvas.width,
                                                         canvas.height, rate),
                            "trim=end_frame=%d" % spec.frames_total,
                            "setpts=N/(%s*TB)" % rate, "format=rgb24"], "c")
    order = sorted(range(len(regions)), key=lambda index: (regions[index].z, index))
    overlays = ["overlay=x=%d:y=%d:format=rgb:eof_action=repeat" % (region.x, region.y)
                for region in regions]
    for index in order[:-1]:
        below = graph.link([below, placed[index]], [overlays[index]], "c")
    last = order[-1]
    return [below, placed[last]], [overlays[last], "format=rgb24"] + text.burn_in_filters(spec)


def _placed(source):
    # type: (Source) -> Region
    assert source.region is not None, "a layout places every source"
    return source.region


def job_argv(ffmpeg, spec, segments, paths, preview_path=None):
    # type: (str, Spec, List[Segment], List[str], Optional[str]) -> List[str]
    """The one ffmpeg command that decodes every frame once and writes every output.

    Each segment (see :data:`Segment`) is one input, so no decoder ever sees
    a frame it was not configured for; each is fitted onto the RGB canvas,
    they are joined with the concat filter and renumbered at the frame rate,
    then split to one chain per output (``paths[i]`` is where output ``i``
    goes).  The first output on the command line is the one ``-progress``
    counts: the first video, or a null sink counting frames.  With
    ``preview_path``, the video :func:`preview.previewed` names is also
    written there as the growing preview, by the same encoder.
    """
    rate = spec.frame_rate
    fps_mode = spec.ffmpeg_fps_mode
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-y", "-loglevel", "error",
            "-progress", "pipe:1"]
    if not fps_mode and any(isinstance(output, (PosterOutput, ContactSheetOutput))
                            for output in spec.outputs):
        argv += ["-vsync", "0"]  # passthrough for all (the videos' frames are evenly timed)
    threads = ["-threads", str(spec.threads)] if spec.threads else []
    if spec.threads:
        argv += ["-filter_complex_threads", str(spec.threads)]
    for segment in segments:
        argv += threads + ["-f", "image2", "-framerate", rate, "-start_number", "0",
                           "-i", segment.pattern]
    outputs = spec.outputs
    order = sorted(range(len(outputs)), key=lambda i: not isinstance(outputs[i], VideoOutput))
    counter = not isinstance(outputs[order[0]], VideoOutput)
    branches = len(outputs) + (1 if counter else 0)
    graph = Graph()
    if spec.composed():
        placed = [graph.link(*_source(graph, spec, segments, index), hint="src")
                  for index in range(len(spec.sources))]
        inputs, filters = _composition(graph, spec, placed)
    else:
        inputs, filters = _source(graph, spec, segments, 0)
    # The canvas goes on to the outputs as it is, or split into one branch each.
    ends = graph.add(inputs, filters, [graph.label("base")]) if branches == 1 else \
        graph.add(inputs, filters + ["split=%d" % branches],
                  [graph.label("b") for _ in range(branches)])
    mapped = []  # type: List[List[str]]
    if counter:
        count = graph.link([ends[len(outputs)]], ["null"], "count")
        mapped.append(["-map", "[%s]" % count, "-c:v", "wrapped_avframe", "-f", "null", "-"])
    previewed = preview.previewed(spec) if preview_path is not None else None
    for index in order:
        output = outputs[index]
        link = _output_chain(graph, ends[index], output, spec.canvas, rate)
        extra = ["-r", rate] if isinstance(output, VideoOutput) else []
        mapped.append(["-map", "[%s]" % link] + extra
                      + _codec_args(output, fps_mode, spec.threads)
                      + _destination(output, paths[index], spec.intermediate,
                                     preview_path if output is previewed else None))
    argv += ["-filter_complex", graph.text()]
    for part in mapped:
        argv += part
    return argv


def first_undecodable(ffmpeg, pattern, deadline):
    # type: (str, str, float) -> Optional[Tuple[int, str]]
    """The number of the first frame of an image2 ``pattern`` that does not decode,
    and ffmpeg's reason, or None when all decode (or ``deadline`` passes first).

    Each decoded frame is one ``framecrc`` line whose pts is its number, so a
    skipped frame is a gap; the images are read in ``pattern``'s order."""
    import select
    import time

    argv = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error",
            "-f", "image2", "-framerate", "1", "-start_number", "0", "-i", pattern,
            "-f", "framecrc", "-"]
    errors = tempfile.TemporaryFile()  # a pipe could fill and stall ffmpeg
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=errors)
    except OSError:
        errors.close()
        return None
    assert proc.stdout is not None
    expected = 0
    missing = None  # type: Optional[int]
    buffered = b""
    try:
        while missing is None:
            left = deadline - time.time()
            if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
                return None
            chunk = os.read(proc.stdout.fileno(), 1 << 16)
            if not chunk:
                break
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            for line in lines:
                fields = line.split(b",")
                if line.startswith(b"#") or len(fields) < 3 or not fields[1].strip().isdigit():
                    continue
                pts = int(fields[1])
                if pts != expected:
                    missing = expected
                    break
                expected += 1
        if missing is None:
            count = len(os.listdir(os.path.dirname(pattern.replace("%%", "%"))))
            if expected >= count:
                return None
            missing = expected
    finally:
        proc.kill()
        proc.communicate()
        errors.seek(0)
        err = errors.read(1 << 16)
        errors.close()
    reasons = [re.sub(r"^\[[^\]]*\]\s*", "", line).strip()
               for line in err.decode("utf-8", "replace").splitlines() if line.strip()]
    return missing, reasons[0] if reasons else ""


def thumbnail_argv(ffmpeg, source, width, height, content_type, output):
    # type: (str, str, int, int, str, str) -> List[str]
    """Convert and/or shrink one image to ``width``x``height``."""
    codec = "png" if content_type == "image/png" else "mjpeg"
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
            "-f", "image2", "-pattern_type", "none", "-i", source,
            "-vf", "scale=%d:%d:flags=lanczos" % (width, height), "-frames:v", "1"]
    if codec == "mjpeg":
        argv += ["-q:v", "3", "-pix_fmt", "yuvj444p"]
    argv += ["-c:v", codec, "-f", "image2", output]
    return argv
