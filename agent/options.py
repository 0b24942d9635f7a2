"""Validate a video request and turn it into the job's normalised spec.

Every option of ``POST /remotes/(sid)/videos`` is checked here, before
anything starts; a wrong value raises a bad-request error naming the field
(``{"field": "outputs.1.crf"}``, which the server turns into the JSON
pointer ``/outputs/1/crf``) and saying what is allowed.  What it returns
is a :class:`spec.Spec`, the record the detached runner and
``ffmpeg.job_argv`` consume.
"""

import fnmatch
import os
import re
from fractions import Fraction
from typing import Any, Dict, List, Optional, Tuple  # noqa: F401 (type comments)

from . import ffmpeg, files, protocol, text
from .spec import (  # noqa: F401 (Output in type comments)
    BurnIn,
    Canvas,
    ContactSheetOutput,
    Frame,
    GifOutput,
    Output,
    Placement,
    PosterOutput,
    Region,
    Source,
    Spec,
    VideoOutput,
)

MAX_REPORTED = 100
MAX_SIDE = 16384
MAX_FRAME_RATE = 1000
MAX_DURATION = 3600.0
MAX_SHEET_FRAMES = 400
VIDEO_TYPES = {"video/mp4": "mp4", "video/webm": "webm"}
IMAGE_TYPES = {"image/jpeg": "jpg", "image/png": "png"}
FITS = ("contain", "cover", "stretch")
SORTS = ("natural", "name", "mtime")
PIXEL_FORMATS = ("yuv420p", "yuv444p")
H264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                "slower", "veryslow")
CONTAINER_CODECS = {"video/mp4": ("h264", "av1"), "video/webm": ("vp9", "av1")}
CRF_RANGES = {"h264": (0, 51), "vp9": (0, 63), "av1": (0, 63)}
DEFAULT_CRF = {"h264": 23, "vp9": 32, "av1": 35}
SPEED_RANGES = {"vp9": (0, 8), "av1": (0, 13)}
DEFAULT_SPEED = {"vp9": 4, "av1": 8}
GOP_SECONDS = 2  # VP9's keyframe interval by default (libvpx's own is 128 frames)
MIN_GOP = 8
# Largest frames an encoder takes: H.264 level 6.2 allows 139,264 macroblocks.
LEVEL_LIMITS = {
    "h264": (8192, 8192, 139264 * 256, "H.264 level 6.2"),
    "vp9": (16384, 16384, 16384 * 16384, "VP9"),
    "av1": (16384, 8704, 16384 * 8704, "AV1"),
}
# Smallest frames an encoder takes (SVT-AV1 refuses anything under 64x64).
ENCODER_MINIMUM = {"libsvtav1": 64}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_COLOUR = re.compile(r"^(#[0-9a-fA-F]{6}|black|white|gray|grey|red|green|blue)$")
_BITRATE = re.compile(r"^([0-9]{1,11}(\.[0-9]{1,6})?)([kKmM]?)$")
_PERCENT = re.compile(r"^([0-9]{1,3}(\.[0-9]+)?)%$")
IMAGE_NAME = re.compile(r"(?is).*\.(png|jpe?g)\Z")

SERVER_FIELDS = ("job", "max-images", "executor")
JOB_FIELDS = ("content-type", "images", "frame-rate", "durations", "width", "height",
              "fit", "background", "codec", "crf", "bitrate", "preset", "speed",
              "pixel-format", "gop", "outputs", "poster", "contact-sheet", "gif", "layout",
              "burn-in", "chunks", "threads", "preview")
VIDEO_FIELDS = ("name", "kind", "content-type", "width", "height", "fit", "background",
                "codec", "crf", "bitrate", "preset", "speed", "pixel-format", "gop")
STILL_FIELDS = {
    "poster": ("name", "kind", "content-type", "at", "width", "height", "fit", "background"),
    "contact-sheet": ("name", "kind", "content-type", "frames", "wrap", "width", "height",
                      "crop", "background"),
    "gif": ("name", "kind", "width", "height", "fit", "background", "loop",
            "frame-duration"),
}


def bad(field, message):
    # type: (str, str) -> protocol.AgentError
    return protocol.AgentError(protocol.BAD_REQUEST, message, {"field": field})


def _check_fields(values, allowed, where):
    # type: (Dict[str, Any], Tuple[str, ...], str) -> None
    for key in values:
        if key not in allowed:
            field = "%s.%s" % (where, key) if where else key
            raise bad(field, "Unknown option %r; allowed here: %s."
                      % (field, ", ".join(sorted(allowed))))


def _integer(values, key, where, low, high, default=None):
    # type: (Dict[str, Any], str, str, int, int, Optional[int]) -> Optional[int]
    value = values.get(key)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise bad(_join(where, key), "%s must be a whole number from %d to %d, got %r."
                  % (_join(where, key), low, high, value))
    return value


def _choice(values, key, where, choices, default):
    # type: (Dict[str, Any], str, str, Tuple[str, ...], Optional[str]) -> Optional[str]
    value = values.get(key)
    if value is None:
        return default
    if value not in choices:
        raise bad(_join(where, key), "%s must be one of %s, got %r."
                  % (_join(where, key), ", ".join(choices), value))
    return value


def _join(where, key):
    # type: (str, str) -> str
    return "%s.%s" % (where, key) if where else key


def _seconds(value, field, low=0.0):
    # type: (Any, str, float) -> float
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not low < float(value) <= MAX_DURATION:
        raise bad(field, "%s must be a number of seconds above %g and at most %g, got %r."
                  % (field, low, MAX_DURATION, value))
    return float(value)


def frame_rate(value):
    # type: (Any) -> Fraction
    """25, 29.97, "30000/1001" or "1/5" as an exact fraction."""
    if value is None:
        return Fraction(25)
    try:
        if isinstance(value, bool):
            raise ValueError()
        rate = Fraction(str(value)).limit_denominator(100000)
    except (ValueError, ZeroDivisionError):
        rate = Fraction(-1)
    if not 0 < rate <= MAX_FRAME_RATE or rate < Fraction(1, 3600):
        raise bad("frame-rate", "frame-rate must be a number or fraction from 1/3600 to %d "
                  "frames per second (e.g. 25, 29.97 or \"1/5\"), got %r."
                  % (MAX_FRAME_RATE, value))
    return rate


def rate_text(rate):
    # type: (Fraction) -> str
    return str(rate.numerator) if rate.denominator == 1 else \
        "%d/%d" % (rate.numerator, rate.denominator)


# -- frame selection --------------------------------------------------------

def _within(paths, field, limit):
    # type: (List[str], str, Optional[int]) -> List[str]
    if limit is not None and len(paths) > limit:
        raise bad(field, "%s selects %d images; this server allows at most %d per job "
                  "(use step, or split the job)." % (field, len(paths), limit))
    return paths


def expand(images, field="images", limit=None):
    # type: (Any, str, Optional[int]) -> List[str]
    """The list of image paths a request names, in encoding order (at most ``limit``)."""
    if isinstance(images, list):
        if not images:
            raise bad(field, "%s must name at least one image." % field)
        return _within(images, field, limit)
    if not isinstance(images, dict):
        raise bad(field, "%s must be a list of absolute paths or an object "
                  "{\"directory\", \"pattern\", \"sort\", \"start\", \"stop\", \"step\"}."
                  % field)
    _check_fields(images, ("directory", "pattern", "sort", "start", "stop", "step"), field)
    directory = files.absolute(images.get("directory"), field + ".directory")
    pattern = images.get("pattern")
    if pattern is not None and (not isinstance(pattern, str) or not pattern or "/" in pattern
                                or "\x00" in pattern):
        raise bad(field + ".pattern", "%s.pattern must be a file name pattern such as "
                  "\"frame*.png\" (no /)." % field)
    order = _choice(images, "sort", field, SORTS, "natural")
    start = _integer(images, "start", field, 0, 10 ** 9, 0)
    stop = _integer(images, "stop", field, 0, 10 ** 9, None)
    step = _integer(images, "step", field, 1, 10 ** 6, 1)
    try:
        names = os.listdir(directory)
    except OSError as error:
        raise files.path_error(directory, error) from None
    # Without a pattern: every PNG and JPEG file, by its extension.
    matcher = re.compile(fnmatch.translate(pattern)) if pattern is not None else IMAGE_NAME
    entries = []
    for name in names:
        if name.startswith(".") and not (pattern or "").startswith("."):
            continue
        if not matcher.match(name):
            continue
        full = os.path.join(directory, name)
        if os.path.isdir(full):
            continue
        entries.append((name, full))
    if order == "natural":
        entries.sort(key=lambda entry: files.natural_key(entry[0]))
    elif order == "name":
        entries.sort()
    else:
        entries.sort(key=lambda entry: (_mtime(entry[1]), files.natural_key(entry[0])))
    if not entries:
        if pattern is None:
            raise bad(field + ".directory", "No PNG or JPEG file (*.png, *.jpg, *.jpeg) in "
                      "%s; give images.pattern to choose other files." % directory)
        raise bad(field + ".pattern", "No file in %s matches %r." % (directory, pattern))
    selected = [full for _, full in entries][start:stop:step]
    if not selected:
        raise bad(field + ".start", "start, stop and step select none of the %d files "
                  "%s." % (len(entries), "matching %r" % pattern if pattern is not None
                           else "that are PNG or JPEG images"))
    return _within(selected, field, limit)


def _mtime(path):
    # type: (str) -> float
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def inspect(paths, field="images", failures=None):
    # type: (List[Any], str, Optional[List[Dict[str, Any]]]) -> List[Frame]
    """Check every image before anything starts; report all that are bad.

    With ``failures``, problems are appended there for the caller to raise
    (a layout checks all its sources first); otherwise they raise here.
    """
    frames = []  # type: List[Frame]
    collect = failures is not None
    failures = failures if failures is not None else []
    for index, path in enumerate(paths):
        try:
            files.absolute(path, "%s[%d]" % (field, index))
            info = files.check_image(path)
        except protocol.AgentError as error:
            failures.append({"index": index, "field": "%s.%d" % (field, index),
                             "path": path if isinstance(path, str) else None,
                             "code": error.code, "message": error.message})
            continue
        frames.append(Frame(path, info.kind, info.width, info.height, info.layout))
    if failures and not collect:
        raise_bad_images(failures)
    return frames


def raise_bad_images(failures):
    # type: (List[Dict[str, Any]]) -> None
    raise protocol.AgentError(protocol.BAD_IMAGES, failures[0]["message"],
                              {"count": len(failures), "bad": failures[:MAX_REPORTED]})


def repeats(durations, count, rate):
    # type: (Any, int, Fraction) -> List[int]
    """How many output frames each image is held for (1 each without durations)."""
    if durations is None:
        return [1] * count
    if not isinstance(durations, list) or len(durations) != count:
        raise bad("durations", "durations must list one number of seconds per image "
                  "(%d images), got %s." % (count, "%d values" % len(durations)
                                            if isinstance(durations, list) else
                                            repr(durations)))
    held = []
    for index, value in enumerate(durations):
        seconds = _seconds(value, "durations.%d" % index)
        held.append(max(1, int(round(Fraction(seconds) * rate))))
    return held


# -- sizes and colours ------------------------------------------------------------

def even(value):
    # type: (float) -> int
    return max(2, int(value) - int(value) % 2)


def target_size(values, where, width, height):
    # type: (Dict[str, Any], str, int, int) -> Tuple[int, int]
    """``width``/``height`` from the request; either alone keeps the aspect."""
    wanted_w = _integer(values, "width", where, 2, MAX_SIDE)
    wanted_h = _integer(values, "height", where, 2, MAX_SIDE)
    if wanted_w and wanted_h:
        return even(wanted_w), even(wanted_h)
    if wanted_w:
        return even(wanted_w), even(wanted_w * height / float(width))
    if wanted_h:
        return even(wanted_h * width / float(height)), even(wanted_h)
    return even(width), even(height)


def colour(values, where, default="black"):
    # type: (Dict[str, Any], str, str) -> str
    """``background`` as ffmpeg writes colours; ``default`` is returned as it is."""
    value = values.get("background")
    if value is None:
        return "0x" + default[1:] if default.startswith("#") else default
    if not isinstance(value, str) or not _COLOUR.match(value):
        raise bad(_join(where, "background"), "%s must be #RRGGBB or one of black, white, "
                  "gray, red, green, blue, got %r." % (_join(where, "background"), value))
    return "0x" + value[1:] if value.startswith("#") else value


def within_level(codec, encoder, width, height, notes):
    # type: (str, str, int, int, List[str]) -> Tuple[int, int]
    """Scale a frame size (never fail) into what the codec's level and encoder allow."""
    minimum = ENCODER_MINIMUM.get(encoder, 2)
    if width < minimum or height < minimum:
        scale = max(minimum / float(width), minimum / float(height))
        new_w, new_h = even(width * scale + 1), even(height * scale + 1)
        notes.append("Scaled %dx%d up to %dx%d: %s needs at least %dx%d."
                     % (width, height, new_w, new_h, encoder, minimum, minimum))
        width, height = new_w, new_h
    max_w, max_h, max_area, label = LEVEL_LIMITS[codec]
    scale = min(1.0, max_w / float(width), max_h / float(height),
                (max_area / float(width * height)) ** 0.5)
    if scale >= 1.0:
        return width, height
    new_w, new_h = even(width * scale), even(height * scale)
    notes.append("Scaled %dx%d down to %dx%d to stay within %s limits."
                 % (width, height, new_w, new_h, label))
    return new_w, new_h


# -- outputs -------------------------------------------------------------------

def video_output(values, where, name, canvas, ffmpeg_info, notes, rate):
    # type: (Dict[str, Any], str, str, Canvas, Dict[str, Any], List[str], Fraction) -> VideoOutput
    content_type = values.get("content-type")
    if content_type not in VIDEO_TYPES:
        raise bad(_join(where, "content-type"), "%s must be video/mp4 or video/webm, got %r."
                  % (_join(where, "content-type"), content_type))
    codec = _choice(values, "codec", where, CONTAINER_CODECS[content_type],
                    CONTAINER_CODECS[content_type][0])
    assert codec is not None
    encoder = ffmpeg_info.get("encoders", {}).get(codec)
    if not encoder:
        raise protocol.AgentError(
            protocol.NO_ENCODER, "The remote ffmpeg has no %s encoder (needs one of %s)."
            % (codec, ", ".join(ffmpeg.KNOWN_ENCODERS[codec])),
            {"field": _join(where, "codec"),
             "hint": "Use an ffmpeg build with %s, or another codec." %
                     ffmpeg.KNOWN_ENCODERS[codec][0]})
    low, high = CRF_RANGES[codec]
    crf = _integer(values, "crf", where, low, high)
    bitrate = values.get("bitrate")
    if bitrate is not None:
        if crf is not None:
            raise bad(_join(where, "bitrate"), "Give crf or bitrate, not both.")
        bitrate = bits_per_second(bitrate, _join(where, "bitrate"))
    if codec == "h264":
        preset = _choice(values, "preset", where, H264_PRESETS, "medium")
        if values.get("speed") is not None:
            raise bad(_join(where, "speed"), "speed applies to vp9 and av1; use preset "
                      "(%s) for h264." % ", ".join(H264_PRESETS))
        speed = None
    else:
        if values.get("preset") is not None:
            raise bad(_join(where, "preset"), "preset applies to h264; use speed "
                      "(%d-%d) for %s." % (SPEED_RANGES[codec] + (codec,)))
        preset = None
        speed = _integer(values, "speed", where, SPEED_RANGES[codec][0],
                         SPEED_RANGES[codec][1], DEFAULT_SPEED[codec])
    pixel_format = _choice(values, "pixel-format", where, PIXEL_FORMATS, "yuv420p")
    assert pixel_format is not None
    if encoder == "libsvtav1" and pixel_format != "yuv420p":
        raise bad(_join(where, "pixel-format"), "pixel-format %s is not available with the "
                  "remote AV1 encoder (libsvtav1); use yuv420p." % pixel_format)
    width, height = target_size(values, where, canvas.width, canvas.height)
    width, height = within_level(codec, encoder, width, height, notes)
    gop = _integer(values, "gop", where, 1, 100000)
    if gop is None and codec == "vp9":
        gop = default_gop(rate)
    fit = _choice(values, "fit", where, FITS, "contain")
    assert fit is not None
    return VideoOutput(
        name=name, content_type=content_type, extension=VIDEO_TYPES[content_type],
        width=width, height=height, fit=fit, background=colour(values, where),
        codec=codec, encoder=encoder,
        crf=DEFAULT_CRF[codec] if crf is None and bitrate is None else crf,
        bitrate=bitrate, preset=preset, speed=speed, pixel_format=pixel_format, gop=gop)


def default_gop(rate):
    # type: (Fraction) -> int
    """VP9's keyframe interval unless ``gop`` is given: GOP_SECONDS of frames (at
    least MIN_GOP), so a player seeks within that much video, and chunks can start
    on the same keyframes as the unchunked video (agent/chunks.py)."""
    return max(MIN_GOP, int(round(rate * GOP_SECONDS)))


def still_output(kind, values, where, name, canvas, frame_count, rate):
    # type: (str, Dict[str, Any], str, str, Canvas, int, Fraction) -> Output
    """A poster, contact sheet or GIF (``kind``) from its options ``values``."""
    background = colour(values, where)
    fit = _choice(values, "fit", where, FITS, "contain")
    assert fit is not None
    if kind == "gif":
        default_w = min(canvas.width, 480)
        width, height = target_size(dict(values, width=values.get("width", default_w))
                                    if values.get("height") is None else values,
                                    where, canvas.width, canvas.height)
        loop = _integer(values, "loop", where, -1, 65535, 0)
        duration = values.get("frame-duration")
        step = 1
        if duration is not None:
            seconds = _seconds(duration, _join(where, "frame-duration"), 0.0)
            if seconds < 0.02:
                raise bad(_join(where, "frame-duration"), "%s must be at least 0.02 seconds "
                          "(GIF timing resolution is 1/100 s)." % _join(where, "frame-duration"))
            rate_out = Fraction(1) / Fraction(seconds).limit_denominator(100)
        else:
            rate_out = min(rate, Fraction(50))
        assert loop is not None
        return GifOutput(name=name, content_type="image/gif", extension="gif", width=width,
                         height=height, fit=fit, background=background, loop=loop,
                         frame_rate=rate_text(rate_out), step=step)
    content_type = values.get("content-type", "image/jpeg")
    if content_type not in IMAGE_TYPES:
        raise bad(_join(where, "content-type"), "%s must be image/jpeg or image/png, got %r."
                  % (_join(where, "content-type"), content_type))
    if kind == "poster":
        frame = poster_frame(values.get("at", "50%"), _join(where, "at"), frame_count, rate)
        width, height = target_size(values, where, canvas.width, canvas.height)
        return PosterOutput(name=name, content_type=content_type,
                            extension=IMAGE_TYPES[content_type], width=width, height=height,
                            fit=fit, background=background, frame=frame)
    count = _integer(values, "frames", where, 1, MAX_SHEET_FRAMES, 12)
    assert count is not None
    count = min(count, frame_count)
    wrap = _integer(values, "wrap", where, 1, MAX_SHEET_FRAMES, min(count, 4))
    assert wrap is not None
    cell_w, cell_h = target_size(dict(values, width=values.get("width", 160))
                                 if values.get("height") is None else values,
                                 where, canvas.width, canvas.height)
    crop = values.get("crop", False)
    if not isinstance(crop, bool):
        raise bad(_join(where, "crop"), "%s must be true or false." % _join(where, "crop"))
    columns = min(wrap, count)
    rows = (count + columns - 1) // columns
    if columns * cell_w > MAX_SIDE or rows * cell_h > MAX_SIDE:
        raise bad(_join(where, "frames"), "The contact sheet would be %dx%d; keep it within "
                  "%d pixels a side (fewer frames, smaller cells or another wrap)."
                  % (columns * cell_w, rows * cell_h, MAX_SIDE))
    return ContactSheetOutput(name=name, content_type=content_type,
                              extension=IMAGE_TYPES[content_type], width=cell_w, height=cell_h,
                              fit="cover" if crop else "contain", background=background,
                              frames=sample_frames(frame_count, count), columns=columns,
                              rows=rows)


def bits_per_second(value, field):
    # type: (Any, str) -> str
    """2500000, "2500k" or "2.5M" as a whole number of bits per second."""
    match = _BITRATE.match(str(value)) if not isinstance(value, bool) else None
    if match is not None:
        scale = {"": 1, "k": 1000, "m": 1000000}[match.group(3).lower()]
        bits = int(round(float(match.group(1)) * scale))
        if 1000 <= bits <= 10 ** 10:
            return str(bits)
    raise bad(field, "%s must be bits per second from 1000 to 10000000000, such as 2500000, "
              "\"2500k\" or \"2.5M\", got %r." % (field, value))


def poster_frame(at, field, frame_count, rate):
    # type: (Any, str, int, Fraction) -> int
    """The frame shown at ``at``: seconds, or a percentage such as "50%"."""
    if isinstance(at, str):
        match = _PERCENT.match(at)
        if match is None or float(match.group(1)) > 100:
            raise bad(field, "%s must be seconds from the start or a percentage such as "
                      "\"50%%\", got %r." % (field, at))
        return int(round(float(match.group(1)) / 100.0 * (frame_count - 1)))
    if isinstance(at, bool) or not isinstance(at, (int, float)) or at < 0:
        raise bad(field, "%s must be seconds from the start or a percentage such as "
                  "\"50%%\", got %r." % (field, at))
    return min(frame_count - 1, int(Fraction(at).limit_denominator(1000) * rate))


def sample_frames(frame_count, count):
    # type: (int, int) -> List[int]
    """``count`` frame numbers spread evenly from the first frame to the last."""
    if count == 1:
        return [0]
    return sorted(set(int(round(i * (frame_count - 1) / float(count - 1)))
                      for i in range(count)))


def plan_outputs(args, canvas, frame_count, rate, ffmpeg_info, notes):
    # type: (Dict[str, Any], Canvas, int, Fraction, Dict[str, Any], List[str]) -> Tuple[List[Output], List[Output]]  # noqa: E501
    """The job's outputs: the top-level video, ``outputs``, then the stills shorthands.

    Also returns those of them whose size is the canvas's, whatever it becomes
    (posters that give neither width nor height).
    """
    requested = []  # type: List[Tuple[str, Dict[str, Any]]]
    if args.get("content-type") is not None:
        top = {key: args[key] for key in VIDEO_FIELDS if key in args}
        requested.append(("", dict(top, name="video", kind="video")))
    else:
        stray = [key for key in ("codec", "crf", "bitrate", "preset", "speed", "pixel-format",
                                 "gop") if key in args]
        if stray:
            raise bad(stray[0], "%s applies to the top-level video, which needs content-type; "
                      "add content-type or move it into an entry of outputs." % stray[0])
    extra = args.get("outputs")
    if extra is not None:
        if not isinstance(extra, list) or not extra:
            raise bad("outputs", "outputs must be a non-empty list of output objects.")
        for index, item in enumerate(extra):
            if not isinstance(item, dict):
                raise bad("outputs.%d" % index, "outputs[%d] must be an object." % index)
            requested.append(("outputs.%d" % index, item))
    for kind in ("poster", "contact-sheet", "gif"):
        value = args.get(kind)
        if value is None or value is False:
            continue
        if value is True:
            value = {}
        if not isinstance(value, dict):
            raise bad(kind, "%s must be true or an object of options." % kind)
        if value.get("kind", kind) != kind:
            raise bad(kind + ".kind", "%s.kind can only be %r here; list other kinds in "
                      "outputs." % (kind, kind))
        requested.append((kind, dict(value, kind=kind, name=value.get("name", kind))))
    if not requested:
        raise bad("content-type", "content-type is required (video/mp4 or video/webm) "
                  "unless outputs lists what to make.")
    outputs = []  # type: List[Output]
    canvas_sized = []  # type: List[Output]
    names = set()  # type: set
    for index, (where, values) in enumerate(requested):
        kind = values.get("kind", "video")
        if kind != "video" and kind not in STILL_FIELDS:
            raise bad(_join(where, "kind"), "%s must be video, poster, contact-sheet or gif, "
                      "got %r." % (_join(where, "kind"), kind))
        allowed = VIDEO_FIELDS if kind == "video" else STILL_FIELDS[kind]
        _check_fields(values, allowed, where)
        name = values.get("name", kind if kind != "video" else "video-%d" % index)
        if not isinstance(name, str) or not _NAME.match(name):
            raise bad(_join(where, "name"), "%s must be 1-64 lowercase letters, digits, - "
                      "or _, starting with a letter or digit, got %r."
                      % (_join(where, "name"), name))
        if name in names:
            raise bad(_join(where, "name"), "Two outputs are named %r; names must be "
                      "unique." % name)
        names.add(name)
        if kind == "video":
            outputs.append(video_output(values, where, name, canvas, ffmpeg_info, notes,
                                        rate))
        else:
            outputs.append(still_output(kind, values, where, name, canvas, frame_count, rate))
            if kind == "poster" and values.get("width") is None \
                    and values.get("height") is None:
                canvas_sized.append(outputs[-1])
    return outputs, canvas_sized


# -- compositions ------------------------------------------------------------------

LAYOUT_FIELDS = ("type", "width", "height", "resolution", "background", "fit", "gap",
                 "max_columns", "max_rows", "sources", "regions")
SOURCE_FIELDS = ("images", "label")
REGION_FIELDS = ("images", "label", "x_pos", "y_pos", "z_pos", "width", "height", "fit",
                 "background")
_RESOLUTION = re.compile(r"^([1-9][0-9]{0,4})x([1-9][0-9]{0,4})$")


def _label(values, where):
    # type: (Dict[str, Any], str) -> Optional[str]
    label = values.get("label")
    if label is None:
        return None
    if not isinstance(label, str) or not label.strip() or len(label) > 200 or "\x00" in label:
        raise bad(_join(where, "label"), "%s must be text of 1 to 200 characters."
                  % _join(where, "label"))
    return label


def _canvas_size(layout, default):
    # type: (Dict[str, Any], Optional[Tuple[int, int]]) -> Tuple[int, int]
    resolution = layout.get("resolution")
    if resolution is not None:
        if layout.get("width") is not None or layout.get("height") is not None:
            raise bad("layout.resolution", "Give layout.resolution or layout.width and "
                      "layout.height, not both.")
        match = _RESOLUTION.match(str(resolution))
        if match is None or max(int(match.group(1)), int(match.group(2))) > MAX_SIDE:
            raise bad("layout.resolution", "layout.resolution must be WIDTHxHEIGHT such as "
                      "\"1280x720\" (at most %d a side), got %r." % (MAX_SIDE, resolution))
        return even(int(match.group(1))), even(int(match.group(2)))
    width = _integer(layout, "width", "layout", 2, MAX_SIDE)
    height = _integer(layout, "height", "layout", 2, MAX_SIDE)
    if width and height:
        return even(width), even(height)
    if default is None or width or height:
        raise bad("layout.width", "layout needs its size: width and height, or resolution "
                  "such as \"1280x720\".")
    return default


def plan_layout(layout, failures, limit=None):
    # type: (Any, List[Dict[str, Any]], Optional[int]) -> Tuple[Canvas, List[Source]]
    """The canvas and one source per region of a composition."""
    if not isinstance(layout, dict):
        raise bad("layout", "layout must be an object with type \"grid\" or \"regions\".")
    _check_fields(layout, LAYOUT_FIELDS, "layout")
    kind = _choice(layout, "type", "layout", ("grid", "regions"), None)
    if kind is None:
        raise bad("layout.type", "layout.type must be \"grid\" or \"regions\".")
    background = colour(layout, "layout")
    fit = _choice(layout, "fit", "layout", FITS, "contain")
    assert fit is not None
    key = "sources" if kind == "grid" else "regions"
    items = layout.get(key)
    if not isinstance(items, list) or not items or len(items) > 64:
        raise bad("layout." + key, "layout.%s must list 1 to 64 %s, each with its own "
                  "images." % (key, key))
    other = "regions" if kind == "grid" else "sources"
    if layout.get(other) is not None:
        raise bad("layout." + other, "A %s layout takes %s, not %s." % (kind, key, other))
    # Each entry's frames and label, with the entry and its field name for its region.
    entries = []  # type: List[Tuple[List[Frame], Optional[str], Dict[str, Any], str]]
    for index, item in enumerate(items):
        where = "layout.%s.%d" % (key, index)
        if not isinstance(item, dict):
            raise bad(where, "%s must be an object with images." % where)
        _check_fields(item, SOURCE_FIELDS if kind == "grid" else REGION_FIELDS, where)
        paths = expand(item.get("images"), where + ".images", limit)
        frames = inspect(paths, where + ".images", failures)
        entries.append((frames, _label(item, where), item, where))
    if failures:
        raise_bad_images(failures)
    if kind == "grid":
        canvas, regions = _grid(layout, len(entries), entries[0][0][0], fit, background)
    else:
        width, height = _canvas_size(layout, None)
        canvas = Canvas(width, height, fit, background)
        regions = [_region(item, where, index, canvas, fit, background)
                   for index, (_, _, item, where) in enumerate(entries)]
    return canvas, [Source(frames, region, label)
                    for (frames, label, _, _), region in zip(entries, regions)]


def _grid(layout, count, first, fit, background):
    # type: (Dict[str, Any], int, Frame, str, str) -> Tuple[Canvas, List[Region]]
    """The canvas and ``count`` cells, sized by default from the ``first`` image."""
    square = 1
    while square * square < count:
        square += 1
    max_columns = _integer(layout, "max_columns", "layout", 1, 64, square)
    assert max_columns is not None
    columns = min(count, max_columns)
    rows = (count + columns - 1) // columns
    max_rows = _integer(layout, "max_rows", "layout", 1, 64, rows)
    assert max_rows is not None
    if rows > max_rows:
        raise bad("layout.max_rows", "%d sources need %d rows of %d columns; raise "
                  "layout.max_rows or layout.max_columns." % (count, rows, columns))
    gap = _integer(layout, "gap", "layout", 0, 1000, 0)
    assert gap is not None
    default = (even(columns * first.width + gap * (columns - 1)),
               even(rows * first.height + gap * (rows - 1)))
    if max(default) > MAX_SIDE:
        scale = MAX_SIDE / float(max(default))
        default = (even(default[0] * scale), even(default[1] * scale))
    width, height = _canvas_size(layout, default)
    cell_w = (width - gap * (columns - 1)) // columns
    cell_h = (height - gap * (rows - 1)) // rows
    if cell_w < 2 or cell_h < 2:
        raise bad("layout.gap", "With gap %d a %dx%d canvas leaves no room for %d columns "
                  "and %d rows." % (gap, width, height, columns, rows))
    regions = [Region((index % columns) * (cell_w + gap), (index // columns) * (cell_h + gap),
                      index, cell_w, cell_h, fit, background) for index in range(count)]
    return Canvas(width, height, fit, background), regions


def _region(item, where, index, canvas, fit, background):
    # type: (Dict[str, Any], str, int, Canvas, str, str) -> Region
    for key in ("x_pos", "y_pos", "width", "height"):
        if item.get(key) is None:
            raise bad(_join(where, key), "%s is required for a region (x_pos, y_pos, width, "
                      "height in pixels of the canvas)." % _join(where, key))
    x = _integer(item, "x_pos", where, 0, canvas.width - 1)
    y = _integer(item, "y_pos", where, 0, canvas.height - 1)
    width = _integer(item, "width", where, 2, MAX_SIDE)
    height = _integer(item, "height", where, 2, MAX_SIDE)
    z = _integer(item, "z_pos", where, -1000, 1000, index)
    region_fit = _choice(item, "fit", where, FITS, fit)
    assert x is not None and y is not None and z is not None and width and height \
        and region_fit is not None
    return Region(x, y, z, width, height, region_fit, colour(item, where, background))


# -- text on frames -------------------------------------------------------------------

def plan_text(args, sources, ffmpeg_info):
    # type: (Dict[str, Any], List[Source], Dict[str, Any]) -> Optional[BurnIn]
    """Validate ``burn-in`` and check the remote ffmpeg can draw what is asked."""
    values = args.get("burn-in")
    burn_in = None  # type: Optional[BurnIn]
    needs = set()
    if any(source.label for source in sources):
        needs.add(("drawtext", "layout"))
    if values is not None:
        if not isinstance(values, dict):
            raise bad("burn-in", "burn-in must be an object such as {\"frame-number\": true, "
                      "\"filename\": true, \"position\": \"bottom-left\"}.")
        _check_fields(values, ("frame-number", "filename", "position", "size"), "burn-in")
        for key in ("frame-number", "filename"):
            if not isinstance(values.get(key, False), bool):
                raise bad("burn-in." + key, "burn-in.%s must be true or false." % key)
        if not values.get("frame-number") and not values.get("filename"):
            raise bad("burn-in", "burn-in needs \"frame-number\": true, \"filename\": true, "
                      "or both.")
        if values.get("filename") and len(sources) > 1:
            raise bad("burn-in.filename", "File names cannot be burnt into a layout; label "
                      "its regions instead.")
        position = _choice(values, "position", "burn-in", text.POSITIONS, "bottom-left")
        assert position is not None
        burn_in = BurnIn(values.get("frame-number", False), values.get("filename", False),
                         position, _integer(values, "size", "burn-in", 6, 400))
        if burn_in.frame_number:
            needs.add(("drawtext", "burn-in.frame-number"))
        if burn_in.filename:
            needs.add(("subtitles", "burn-in.filename"))
    available = set(ffmpeg_info.get("filters") or [])
    for name, field in sorted(needs):
        if name not in available:
            raise protocol.AgentError(
                protocol.MISSING_FILTER, "The remote ffmpeg has no %s filter, needed for %s."
                % (name, field), {"field": field, "hint": "Use an ffmpeg built with %s, "
                                  "or leave out %s." % ("libfreetype" if name == "drawtext"
                                                        else "libass", field)})
    if needs and text.font_data() is None:
        field = sorted(needs)[0][1]
        raise protocol.AgentError(
            protocol.MISSING_FILTER, "The agent has no font to draw text with (for %s)."
            % ("layout labels" if field == "layout" else field), {"field": field,
                      "hint": "Install framewire with its font-roboto "
                                            "dependency, or set FRAMEWIRE_FONT."})
    return burn_in


# -- the whole request ------------------------------------------------------------

def build_spec(args, ffmpeg_info):
    # type: (Dict[str, Any], Dict[str, Any]) -> Spec
    """Validate ``args`` (a create-video request) and return the job spec.

    ``job``, ``ffmpeg``, ``ffmpeg_fps_mode`` and ``nice`` are left for the
    job store to set.
    """
    _check_fields({key: args[key] for key in args if key not in SERVER_FIELDS}, JOB_FIELDS,
                  "")
    limit = args.get("max-images")  # set by the server, never by its caller
    rate = frame_rate(args.get("frame-rate"))
    notes = []  # type: List[str]
    layout = args.get("layout")
    if layout is not None:
        for key in ("images", "durations"):
            if args.get(key) is not None:
                raise bad(key, "%s cannot be combined with layout: each layout source has "
                          "its own images." % key)
        canvas, sources = plan_layout(layout, [], limit)
        frame_count = max(len(source.frames) for source in sources)
    else:
        frames = inspect(expand(args.get("images"), "images", limit))
        held = repeats(args.get("durations"), len(frames), rate)
        for frame, repeat in zip(frames, held):
            frame.repeat = repeat
        frame_count = sum(held)
        width, height = target_size(args, "", frames[0].width, frames[0].height)
        fit = _choice(args, "fit", "", FITS, "contain")
        assert fit is not None
        canvas = Canvas(width, height, fit, colour(args, ""))
        sources = [Source(frames)]
    burn_in = plan_text(args, sources, ffmpeg_info)
    outputs, canvas_sized = plan_outputs(args, canvas, frame_count, rate, ffmpeg_info, notes)
    if layout is None:
        # Fit frames once: the canvas is the first video's size (within its limits).
        for output in outputs:
            if isinstance(output, VideoOutput):
                canvas.width, canvas.height = output.width, output.height
                break
        for output in canvas_sized:
            output.width, output.height = canvas.width, canvas.height
    preview = args.get("preview")
    if preview is not None and not isinstance(preview, bool):
        raise bad("preview", "preview must be true or false, got %r." % (preview,))
    return Spec(rate_text(rate), frame_count, canvas, sources, outputs, burn_in, notes,
                placement=placement(args.get("executor")),
                threads=_integer(args, "threads", "", 1, 256), preview=preview is not False)


# -- where the work runs ---------------------------------------------------------

_SLURM_NAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,64}$")
_SLURM_TIME = re.compile(r"^(?:\d{1,4}-)?\d{1,5}(?::\d{1,2}){0,2}$")
_SLURM_MEM = re.compile(r"^[1-9][0-9]{0,8}[KMGT]?$")
_SLURM_OPTION = re.compile(r"^--[a-z][a-z0-9-]*(=[^\x00-\x1f]*)?$")


def placement(value):
    # type: (Any) -> Placement
    """The ``executor`` the server chose for the job (its own field, checked again
    here: each value becomes one sbatch argv word, never a shell's)."""
    if value is None:
        return Placement()
    if not isinstance(value, dict):
        raise bad("executor", "executor must be an object {\"kind\": \"local\" or "
                  "\"slurm\", ...}.")
    _check_fields(value, ("kind", "partition", "time", "cpus", "mem", "account", "qos",
                          "options", "parallel"), "executor")
    parallel = _integer(value, "parallel", "executor", 1, 1024)
    kind = _choice(value, "kind", "executor", ("local", "slurm"), "local")
    assert kind is not None
    if kind == "local":
        return Placement(parallel=parallel)
    found = {}  # type: Dict[str, Any]
    for key, pattern, example in (("partition", _SLURM_NAME, "debug"),
                                  ("account", _SLURM_NAME, "proj42"),
                                  ("qos", _SLURM_NAME, "normal"),
                                  ("time", _SLURM_TIME, "00:30:00"),
                                  ("mem", _SLURM_MEM, "4G")):
        item = value.get(key)
        if item is not None and (not isinstance(item, str) or not pattern.match(item)):
            raise bad("slurm." + key, "slurm.%s must look like %r, got %r."
                      % (key, example, item))
        found[key] = item
    cpus = _integer(value, "cpus", "slurm", 1, 4096)
    options = value.get("options") or []
    if not isinstance(options, list) or not all(
            isinstance(item, str) and _SLURM_OPTION.match(item) for item in options):
        raise bad("executor.options", "executor.options must list sbatch options such as "
                  "\"--constraint=avx2\".")
    return Placement("slurm", found["partition"], found["time"], cpus, found["mem"],
                     found["account"], found["qos"], options, parallel)
