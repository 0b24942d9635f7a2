"""job_argv makes the same ffmpeg command as before the filter graph was built from parts."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent import ffmpeg, options
from tests.unit.agent.argv_cases import CASES, FFMPEG, FFMPEG_INFO, normalise, paths_for
from tests.unit.agent.expected_argv import EXPECTED


@pytest.fixture(autouse=True)
def font(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Labels and burn-in need a font file to exist (its bytes are not read here)."""
    path = tmp_path / "font.ttf"
    path.write_bytes(b"not really a font")
    monkeypatch.setenv("FRAMEWIRE_FONT", str(path))


@pytest.mark.parametrize("name", sorted(CASES))
def test_job_argv_is_unchanged(name: str, tmp_path: Path) -> None:
    request, segments, fps_mode = CASES[name](tmp_path)
    spec = options.build_spec(request, FFMPEG_INFO)
    spec.ffmpeg_fps_mode = fps_mode
    argv = ffmpeg.job_argv(FFMPEG, spec, [ffmpeg.Segment(source, pattern)
                                          for source, pattern in segments],
                           paths_for(len(spec.outputs)))
    assert normalise(argv) == EXPECTED[name]


def test_normalise_renames_labels_in_order_and_keeps_inputs() -> None:
    argv = ["ffmpeg", "-filter_complex", "[0:v]null[x];[x]split[b][a]", "-map", "[a]"]
    assert normalise(argv) == ["ffmpeg", "-filter_complex", "[0:v]null[L0];[L0]split[L1][L2]",
                               "-map", "[L2]"]
