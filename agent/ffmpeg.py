"""Find the remote ffmpeg, describe it, and build encoder command lines.

Everything here produces argv lists: no string ever reaches a shell.
"""

import os
import re
import shutil
import subprocess
from typing import Any, Dict, List, Optional, Sequence  # noqa: F401 (type comments)

from . import protocol

# Encoders framewire knows how to drive, by the codec name it exposes.
KNOWN_ENCODERS = {
    "h264": ["libx264"],
    "vp9": ["libvpx-vp9"],
    "av1": ["libsvtav1", "libaom-av1", "librav1e"],
}
CONTENT_TYPE_CODECS = {"video/mp4": "h264", "video/webm": "vp9"}
OUTPUT_EXTENSIONS = {"video/mp4": "mp4", "video/webm": "webm"}


def find_ffmpeg():
    # type: () -> Optional[str]
    """``$FRAMEWIRE_FFMPEG`` if set, else ``ffmpeg`` on ``PATH``."""
    configured = os.environ.get("FRAMEWIRE_FFMPEG")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("ffmpeg")


def describe(path):
    # type: (Optional[str]) -> Dict[str, Any]
    """Version and usable encoders of the ffmpeg at ``path``."""
    if path is None:
        return {"path": None, "version": None, "encoders": {}}
    version = _run([path, "-hide_banner", "-version"]).split("\n", 1)[0]
    listing = _run([path, "-hide_banner", "-encoders"])
    names = set(re.findall(r"^\s*V\S*\s+(\S+)", listing, re.MULTILINE))
    encoders = {}
    for codec, candidates in KNOWN_ENCODERS.items():
        found = [name for name in candidates if name in names]
        if found:
            encoders[codec] = found[0]
    match = re.match(r"ffmpeg version (\S+)", version)
    return {"path": path, "version": match.group(1) if match else version, "encoders": encoders}


def _run(argv):
    # type: (List[str]) -> str
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        out, _ = proc.communicate(timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.decode("utf-8", "replace")


def require(ffmpeg, content_type=None):
    # type: (Dict[str, Any], Optional[str]) -> str
    """The encoder to use for ``content_type``, or an AgentError saying why not."""
    if not ffmpeg.get("path"):
        raise protocol.AgentError(
            protocol.NO_FFMPEG, "ffmpeg was not found on the remote host.",
            {"hint": "Install ffmpeg on the remote host or put it on PATH."})
    if content_type is None:
        return ""
    codec = CONTENT_TYPE_CODECS[content_type]
    encoder = ffmpeg["encoders"].get(codec)
    if not encoder:
        raise protocol.AgentError(
            protocol.NO_ENCODER,
            "The remote ffmpeg has no %s encoder (needs one of %s)."
            % (codec, ", ".join(KNOWN_ENCODERS[codec])),
            {"hint": "Use an ffmpeg build with %s." % KNOWN_ENCODERS[codec][0]})
    return encoder


def even_floor(value):
    # type: (int) -> int
    return max(2, value - value % 2)


def pattern_escape(path):
    # type: (str) -> str
    """Escape ``%`` so image2 does not read a directory name as a pattern."""
    return path.replace("%", "%%")


def encode_argv(ffmpeg, encoder, content_type, segments, width, height, frame_rate,
                output):
    # type: (str, str, str, Sequence[Dict[str, Any]], int, int, str, str) -> List[str]
    """The ffmpeg command that turns numbered frame segments into one video.

    Each segment is a directory of numbered links to frames of identical
    format, size and pixel layout (``{"pattern": ".../%08d.png"}``), so no
    decoder ever sees a frame it was not configured for; segments are joined
    with the concat filter after being fitted into ``width``x``height``.
    """
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-y", "-loglevel", "error",
            "-progress", "pipe:1"]
    for segment in segments:
        argv += ["-f", "image2", "-framerate", frame_rate, "-start_number", "0",
                 "-i", segment["pattern"]]
    fit = ("scale=%d:%d:force_original_aspect_ratio=decrease,"
           "pad=%d:%d:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1" % (width, height, width, height))
    labels = []
    chains = []
    for index in range(len(segments)):
        chains.append("[%d:v]%s[v%d]" % (index, fit, index))
        labels.append("[v%d]" % index)
    if len(segments) > 1:
        chains.append("%sconcat=n=%d:v=1:a=0[joined]" % ("".join(labels), len(segments)))
        last = "[joined]"
    else:
        last = "[v0]"
    # Number frames afresh: a one-image input has no duration, so concat alone
    # would give consecutive segments the same timestamps and ffmpeg drops them.
    chains.append("%ssetpts=N/(%s*TB),format=yuv420p[out]" % (last, frame_rate))
    argv += ["-filter_complex", ";".join(chains), "-map", "[out]", "-r", frame_rate,
             "-c:v", encoder, "-pix_fmt", "yuv420p"]
    if content_type == "video/mp4":
        argv += ["-preset", "medium", "-crf", "23", "-movflags", "+faststart", "-f", "mp4"]
    else:
        argv += ["-row-mt", "1", "-b:v", "0", "-crf", "32", "-deadline", "good",
                 "-cpu-used", "4", "-f", "webm"]
    argv.append(output)
    return argv


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
