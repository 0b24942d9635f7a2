"""The README's first command: `framewire demo` makes a playable video."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import probe


def run_demo(tmp_path: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    framewire = shutil.which("framewire")
    argv = [framewire] if framewire else [sys.executable, "-m", "server.cli"]
    return subprocess.run([*argv, "demo", "--output", str(tmp_path / "demo"), *extra],
                          capture_output=True, text=True, env=env, timeout=300)


def test_demo_writes_a_playable_mp4(tmp_path: Path) -> None:
    result = run_demo(tmp_path, dict(os.environ), "--frames", "30")
    assert result.returncode == 0, result.stdout + result.stderr
    video = tmp_path / "demo" / "demo.mp4"
    assert f"wrote {video}" in result.stdout
    info = probe(video)
    assert (info["codec"], info["pix_fmt"]) == ("h264", "yuv420p")
    assert (info["width"], info["height"]) == (640, 360)
    assert info["frames"] == 30
    assert info["duration"] == pytest.approx(30 / 25, abs=0.02)
    assert len(list((tmp_path / "demo" / "frames").glob("frame*.png"))) == 30
    # It ends by saying what to try next, and says nothing else to worry about.
    assert "framewire serve" in result.stdout
    assert f"framewire video create localhost:{tmp_path / 'demo' / 'frames'} -o again.mp4" \
        in result.stdout
    assert "WARNING" not in result.stderr and "Unknown child process" not in result.stderr


def test_demo_uses_imageio_ffmpeg_without_ffmpeg_on_path(tmp_path: Path) -> None:
    """`pip install` alone: no system ffmpeg, the bundled binary does the work."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    framewire = shutil.which("framewire")
    if framewire:
        os.symlink(framewire, bin_dir / "framewire")
    env = {**os.environ, "PATH": str(bin_dir)}
    result = run_demo(tmp_path, env, "--frames", "20", "--content-type", "video/webm")
    assert result.returncode == 0, result.stdout + result.stderr
    info = probe(tmp_path / "demo" / "demo.webm")
    assert info["codec"] == "vp9" and info["frames"] == 20
