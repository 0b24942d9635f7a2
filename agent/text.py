"""Text drawn on frames: region labels, burnt-in frame numbers and file names.

Labels and frame numbers use ffmpeg's drawtext with a text file (so the text
is never parsed as filter syntax); file names change with every image, so
they go into an ASS subtitle file rendered by the subtitles filter.  The
font ships inside the agent's zipapp and is written next to the job.
"""

import os
import pkgutil
import re
from typing import List, Optional  # noqa: F401 (type comments)

from .spec import BurnIn, Spec  # noqa: F401 (type comments)

FONT_RESOURCE = "fonts/Roboto-Regular.ttf"
FONT_FAMILY = "Roboto"
MARGIN = 8
POSITIONS = ("top-left", "top-right", "bottom-left", "bottom-right")
_ASS_ALIGN = {"top-left": 7, "top-right": 9, "bottom-left": 1, "bottom-right": 3}
_ASS_SPECIAL = re.compile(r"\\(?=[nNh{}])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def font_data():
    # type: () -> Optional[bytes]
    """The font's bytes: ``$FRAMEWIRE_FONT``, else the one bundled with the agent."""
    configured = os.environ.get("FRAMEWIRE_FONT")
    if configured:
        try:
            with open(configured, "rb") as handle:
                return handle.read()
        except OSError:
            return None
    try:
        return pkgutil.get_data("agent", FONT_RESOURCE)
    except OSError:
        return None


def font_size(spec):
    # type: (Spec) -> int
    if spec.burn_in is not None and spec.burn_in.size:
        return spec.burn_in.size
    return max(12, spec.canvas.height // 24)


def ass_text(text):
    # type: (str) -> str
    """Literal text for an ASS event: braces and backslash codes neutralised."""
    text = _CONTROL.sub(" ", text)
    text = _ASS_SPECIAL.sub("\\\\\u200b", text)
    return text.replace("{", "\\{").replace("}", "\\}")


def _ass_time(seconds):
    # type: (float) -> str
    centis = max(0, int(round(seconds * 100)))
    return "%d:%02d:%02d.%02d" % (centis // 360000, centis // 6000 % 60, centis // 100 % 60,
                                  centis % 100)


def write_assets(job_dir, spec, rate, whole=None):
    # type: (str, Spec, float, Optional[Spec]) -> None
    """Write the font, label files and the file-name subtitles a job draws (for a
    chunk, ``whole`` is the job's spec: the file names are the whole job's, from
    the chunk's first frame)."""
    burn_in = spec.burn_in
    labels = [source.label for source in spec.sources]
    if burn_in is None and not any(labels):
        return
    data = font_data()
    if data is None:
        raise RuntimeError("the agent has no font to draw text with")
    os.makedirs(os.path.join(job_dir, "fonts"), exist_ok=True)
    with open(os.path.join(job_dir, FONT_RESOURCE), "wb") as handle:
        handle.write(data)
    for index, label in enumerate(labels):
        if label:
            with open(os.path.join(job_dir, "label-%d.txt" % index), "wb") as handle:
                handle.write(label.encode("utf-8"))
    if burn_in is not None and burn_in.frame_number:
        with open(os.path.join(job_dir, "frame-number.txt"), "w") as handle:
            # A chunk's frames are numbered from where the chunk starts.
            handle.write("%%{eif:n+%d:d}" % (spec.frame_offset + 1))
    if burn_in is not None and burn_in.filename:
        _write_filenames(os.path.join(job_dir, "filenames.ass"), whole or spec, burn_in,
                         rate, spec.frame_offset if whole is not None else 0)


def _write_filenames(path, spec, burn_in, rate, offset=0):
    # type: (str, Spec, BurnIn, float, int) -> None
    canvas = spec.canvas
    size = font_size(spec)
    position = burn_in.position
    # Leave room for the frame number on the same side.
    vertical = MARGIN + (int(size * 1.4) if burn_in.frame_number else 0)
    half = 0.5 / rate
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("[Script Info]\nScriptType: v4.00+\nPlayResX: %d\nPlayResY: %d\n"
                     "WrapStyle: 2\n\n" % (canvas.width, canvas.height))
        handle.write("[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, "
                     "OutlineColour, BackColour, BorderStyle, Outline, Shadow, Alignment, "
                     "MarginL, MarginR, MarginV\n")
        handle.write("Style: Burn,%s,%d,&H00FFFFFF,&H80000000,&H80000000,3,2,0,%d,%d,%d,%d\n\n"
                     % (FONT_FAMILY, size, _ASS_ALIGN[position], MARGIN, MARGIN, vertical))
        handle.write("[Events]\nFormat: Layer, Start, End, Style, Text\n")
        frame = -offset
        for image in spec.sources[0].frames:
            held = image.repeat
            if frame + held <= 0:  # before the chunk
                frame += held
                continue
            start, end = frame / rate - half, (frame + held) / rate - half
            handle.write("Dialogue: 0,%s,%s,Burn,%s\n" % (
                _ass_time(start), _ass_time(end), ass_text(os.path.basename(image.path))))
            frame += held


def label_filter(index, size):
    # type: (int, int) -> str
    return ("drawtext=fontfile=%s:textfile=label-%d.txt:expansion=none:x=%d:y=%d:"
            "fontsize=%d:fontcolor=white:box=1:boxcolor=black@0.55:boxborderw=4"
            % (FONT_RESOURCE, index, MARGIN, MARGIN, size))


def burn_in_filters(spec):
    # type: (Spec) -> List[str]
    burn_in = spec.burn_in
    filters = []  # type: List[str]
    if burn_in is None:
        return filters
    size = font_size(spec)
    position = burn_in.position
    if burn_in.frame_number:
        x = "%d" % MARGIN if position.endswith("left") else "w-tw-%d" % MARGIN
        y = "h-th-%d" % MARGIN if position.startswith("bottom") else "%d" % MARGIN
        filters.append("drawtext=fontfile=%s:textfile=frame-number.txt:x=%s:y=%s:"
                       "fontsize=%d:fontcolor=white:box=1:boxcolor=black@0.55:boxborderw=4"
                       % (FONT_RESOURCE, x, y, size))
    if burn_in.filename:
        filters.append("subtitles=filenames.ass:fontsdir=fonts")
    return filters
