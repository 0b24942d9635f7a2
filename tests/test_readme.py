"""The README's curl walk-through, run as written (hosts, paths and the token swapped
for the test's) against a live server and the real sshd."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from PIL import Image

from tests.fixtures import SSHD, LiveServer, probe, solid_frames

README = Path(__file__).resolve().parent.parent / "README.md"


def walkthrough() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## A walk-through with curl"):]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match, "the walk-through's code block"
    return match.group(1)


def test_the_readme_walkthrough_runs_as_written(server: LiveServer, sshd: SSHD, images: Path,
                                                tmp_path: Path) -> None:
    solid_frames(images, [(250, 20, 20), (20, 20, 250)], size=(320, 240),
                 names=["frame0001.png", "frame0002.png"])
    script = walkthrough()
    for old, new in (
            ("export FRAMEWIRE_TOKEN=choose-one", f"export FRAMEWIRE_TOKEN={server.token}"),
            ("base=http://127.0.0.1:8080", f"base={server.url}"),
            ('"hostname": "cluster.example.org", "username": "fred", "password": "…"',
             f'"hostname": "127.0.0.1", "port": {sshd.port}, "username": "{sshd.user}", '
             f'"password": "{sshd.password}"'),
            ("/scratch/run42", str(images))):
        assert old in script, old
        script = script.replace(old, new)
    done = subprocess.run(["bash", "-c", "set -e -o pipefail\n" + script], cwd=tmp_path,
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"names": ["frame0001.png", "frame0002.png"]' in done.stdout
    assert '"status": "succeeded"' in done.stdout  # step 5 waited for the end
    assert Image.open(tmp_path / "thumb.jpg").size == (160, 120)
    info = probe(tmp_path / "run42.mp4")
    assert (info["codec"], info["frames"]) == ("h264", 2)
    assert (tmp_path / "first-kilobyte.bin").read_bytes() == \
        (tmp_path / "run42.mp4").read_bytes()[:1024]
