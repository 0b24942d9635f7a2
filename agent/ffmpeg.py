"""Find the remote ffmpeg, describe it, and build encoder command lines.

Everything here produces argv lists: no string ever reaches a shell.
"""

import os
import re
import shutil
import subprocess
import tempfile
from typing import Any, Dict, List, Optional, Sequence, Tuple  # noqa: F401 (type comments)

from . import protocol, text

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


COLOUR_TAGS = ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
               "-color_range", "tv"]


def fit_filter(width, height, fit, background):
    # type: (int, int, str, str) -> str
    """Fit any frame into ``width``x``height``: pad (contain), crop (cover) or stretch."""
    if fit == "cover":
        return ("scale=%d:%d:force_original_aspect_ratio=increase,crop=%d:%d,setsar=1"
                % (width, height, width, height))
    if fit == "stretch":
        return "scale=%d:%d,setsar=1" % (width, height)
    return ("scale=%d:%d:force_original_aspect_ratio=decrease,"
            "pad=%d:%d:(ow-iw)/2:(oh-ih)/2:color=%s,setsar=1"
            % (width, height, width, height, background))


def _select(frames):
    # type: (List[int]) -> str
    return "select='%s'" % "+".join("eq(n\\,%d)" % n for n in frames)


def _output_chain(output, canvas, frame_rate):
    # type: (Dict[str, Any], Dict[str, Any], str) -> str
    """Filters from the shared RGB canvas stream to what one output encodes."""
    size = (output["width"], output["height"])
    resize = [] if size == (canvas["width"], canvas["height"]) and output["fit"] == "contain" \
        else [fit_filter(output["width"], output["height"], output["fit"],
                         output["background"])]
    kind = output["kind"]
    if kind == "video":
        return ",".join(resize + ["scale=out_color_matrix=bt709:out_range=tv",
                                  "format=%s" % output["pixel_format"]])
    if kind == "poster":
        # Frame 0 too, overwritten by the chosen one (-update 1): an output whose
        # encoder has no frame yet holds ffmpeg back from every other output.
        return ",".join([_select(sorted({0, output["frame"]}))] + resize)
    if kind == "contact-sheet":
        # The tile comes out at the end; the first frame, sized like the sheet and
        # written first (-update 1 overwrites it), lets the other outputs go on.
        width, height = output["width"], output["height"]
        columns, rows = output["columns"], output["rows"]
        return ("split[sheet_a][sheet_b];[sheet_a]%s,%s,tile=%dx%d[sheet_t];"
                "[sheet_b]trim=end_frame=1,%s[sheet_f];[sheet_f][sheet_t]concat=n=2:v=1:a=0,"
                "setpts=N"
                % (_select(output["frames"]),
                   fit_filter(width, height, output["fit"], output["background"]),
                   columns, rows,
                   fit_filter(width * columns, height * rows, output["fit"],
                              output["background"])))
    # gif: per-frame palettes keep memory flat (no whole-video palette pass)
    steps = []
    if output["frame_rate"] != frame_rate:
        steps.append("fps=%s" % output["frame_rate"])
    steps += resize or ["null"]
    return (",".join(steps) + ",split[gif_a][gif_b];[gif_a]palettegen=stats_mode=single"
            "[gif_p];[gif_b][gif_p]paletteuse=new=1")


def _codec_args(output, fps_mode):
    # type: (Dict[str, Any], bool) -> List[str]
    kind = output["kind"]
    if kind == "poster" or kind == "contact-sheet":
        codec = ["-c:v", "png"] if output["content_type"] == "image/png" \
            else ["-c:v", "mjpeg", "-q:v", "2"]
        # Frames pass as they come: a still must not be encoded again for every
        # frame time between the ones it takes (-update 1 keeps the last).
        timing = ["-fps_mode", "passthrough"] if fps_mode else []
        return codec + timing + ["-update", "1", "-f", "image2"]
    if kind == "gif":
        return ["-c:v", "gif", "-loop", str(output["loop"]), "-f", "gif"]
    encoder = output["encoder"]
    args = ["-c:v", encoder, "-pix_fmt", output["pixel_format"]]
    quality = output["crf"]
    if encoder == "libx264":
        args += ["-preset", output["preset"]]
        args += ["-b:v", output["bitrate"]] if output["bitrate"] else ["-crf", str(quality)]
    elif encoder == "libvpx-vp9":
        args += ["-row-mt", "1", "-deadline", "good", "-cpu-used", str(output["speed"])]
        args += ["-b:v", output["bitrate"]] if output["bitrate"] \
            else ["-crf", str(quality), "-b:v", "0"]
    elif encoder == "libsvtav1":
        args += ["-preset", str(output["speed"])]
        args += ["-b:v", output["bitrate"]] if output["bitrate"] \
            else ["-crf", str(max(1, quality))]
    elif encoder == "libaom-av1":
        args += ["-cpu-used", str(min(8, output["speed"])), "-row-mt", "1"]
        args += ["-b:v", output["bitrate"]] if output["bitrate"] \
            else ["-crf", str(quality), "-b:v", "0"]
    else:  # librav1e
        args += ["-speed", str(min(10, output["speed"]))]
        args += ["-b:v", output["bitrate"]] if output["bitrate"] \
            else ["-qp", str(min(255, quality * 4))]
    if output["gop"]:
        args += ["-g", str(output["gop"])]
    args += COLOUR_TAGS
    if output["content_type"] == "video/mp4":
        args += ["-movflags", "+faststart", "-f", "mp4"]
    else:
        args += ["-f", "webm"]
    return args


def _source_chains(spec, segments):
    # type: (Dict[str, Any], List[Dict[str, Any]]) -> List[str]
    """Per source: fit each segment onto its region, join, renumber, hold to the end.

    Frames are numbered afresh at the frame rate: a one-image input has no
    duration, so concat alone would give consecutive segments the same
    timestamps and ffmpeg would drop them.
    """
    rate = spec["frame_rate"]
    canvas = spec["canvas"]
    chains = []  # type: List[str]
    for source_index, source in enumerate(spec["sources"]):
        area = source.get("region") or canvas
        fit = fit_filter(area["width"], area["height"], area["fit"], area["background"])
        inputs = [index for index, segment in enumerate(segments)
                  if segment.get("source", 0) == source_index]
        for index in inputs:
            chains.append("[%d:v]%s,format=rgb24[v%d]" % (index, fit, index))
        joined = "".join("[v%d]" % index for index in inputs)
        concat = "concat=n=%d:v=1:a=0," % len(inputs) if len(inputs) > 1 else ""
        frames = sum(frame.get("repeat", 1) for frame in source["frames"])
        hold = spec["frames_total"] - frames
        pad = ",tpad=stop_mode=clone:stop=%d" % hold if hold > 0 else ""
        extra = [text.label_filter(source_index, text.font_size(spec))] \
            if source.get("label") else []
        if source.get("region") is None:  # the only source: burn-in goes on it
            extra += text.burn_in_filters(spec)
        chains.append("%s%ssetpts=N/(%s*TB)%s%s[src%d]" % (
            joined, concat, rate, pad, "".join("," + f for f in extra), source_index))
    return chains


def _composition(spec):
    # type: (Dict[str, Any]) -> List[str]
    """Overlay every source at its region, lowest ``z`` first, on a plain canvas."""
    canvas = spec["canvas"]
    rate = spec["frame_rate"]
    chains = ["color=c=%s:s=%dx%d:r=%s,trim=end_frame=%d,setpts=N/(%s*TB),format=rgb24[c0]"
              % (canvas["background"], canvas["width"], canvas["height"], rate,
                 spec["frames_total"], rate)]
    order = sorted(range(len(spec["sources"])),
                   key=lambda i: (spec["sources"][i]["region"]["z"], i))
    for step, source_index in enumerate(order):
        region = spec["sources"][source_index]["region"]
        chains.append("[c%d][src%d]overlay=x=%d:y=%d:format=rgb:eof_action=repeat[c%d]" % (
            step, source_index, region["x"], region["y"], step + 1))
    burn_in = "".join("," + f for f in text.burn_in_filters(spec))
    chains[-1] = chains[-1][:-len("[c%d]" % len(order))] + ",format=rgb24" + burn_in
    return chains


def job_argv(ffmpeg, spec, segments, paths):
    # type: (str, Dict[str, Any], List[Dict[str, Any]], List[str]) -> List[str]
    """The one ffmpeg command that decodes every frame once and writes every output.

    ``segments`` are directories of numbered links to frames of identical
    format, size and pixel layout (``{"pattern": ".../%08d.png"}``), so no
    decoder ever sees a frame it was not configured for; each is fitted onto
    the RGB canvas, they are joined with the concat filter and renumbered at
    the frame rate, then split to one chain per output (``paths[i]`` is where
    output ``i`` goes).  The first output on the command line is the one
    ``-progress`` counts: the first video, or a null sink counting frames.
    """
    canvas = spec["canvas"]
    rate = spec["frame_rate"]
    fps_mode = bool(spec.get("ffmpeg_fps_mode"))
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-y", "-loglevel", "error",
            "-progress", "pipe:1"]
    if not fps_mode and any(output["kind"] in ("poster", "contact-sheet")
                            for output in spec["outputs"]):
        argv += ["-vsync", "0"]  # passthrough for all (the videos' frames are evenly timed)
    for segment in segments:
        argv += ["-f", "image2", "-framerate", rate, "-start_number", "0",
                 "-i", segment["pattern"]]
    outputs = spec["outputs"]
    order = sorted(range(len(outputs)), key=lambda i: outputs[i]["kind"] != "video")
    counter = outputs[order[0]]["kind"] != "video"
    branches = len(outputs) + (1 if counter else 0)
    fan_out = "[base]" if branches == 1 else \
        ",split=%d%s" % (branches, "".join("[b%d]" % i for i in range(branches)))
    chains = _source_chains(spec, segments)
    if len(spec["sources"]) == 1 and spec["sources"][0].get("region") is None:
        chains[-1] = chains[-1][:-len("[src0]")] + fan_out
    else:
        chains += _composition(spec)
        chains[-1] += fan_out
    mapped = []  # type: List[List[str]]
    if counter:
        chains.append("[b%d]null[count]" % len(outputs))
        mapped.append(["-map", "[count]", "-c:v", "wrapped_avframe", "-f", "null", "-"])
    for index in order:
        source = "[base]" if branches == 1 else "[b%d]" % index
        chain = _output_chain(outputs[index], canvas, rate).replace(
            "gif_", "gif%d_" % index).replace("sheet_", "sheet%d_" % index)
        chains.append("%s%s[o%d]" % (source, chain, index))
        extra = ["-r", rate] if outputs[index]["kind"] == "video" else []
        mapped.append(["-map", "[o%d]" % index] + extra + _codec_args(outputs[index], fps_mode)
                      + [paths[index]])
    argv += ["-filter_complex", ";".join(chains)]
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
