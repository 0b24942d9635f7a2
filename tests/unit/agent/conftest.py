"""Fixtures of the agent's unit tests."""

from __future__ import annotations

from typing import Any

import pytest

from agent import ffmpeg


@pytest.fixture(scope="module")
def ffmpeg_info() -> dict[str, Any]:
    """The installed ffmpeg, as the agent describes it (the tests need a real one)."""
    info = ffmpeg.describe(ffmpeg.find_ffmpeg())
    if not info["path"]:
        raise RuntimeError("ffmpeg is not installed: apt-get install ffmpeg (.ci/run does)")
    return info
