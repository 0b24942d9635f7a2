"""A 10,000-image job through the API over SSH, with the agent's memory measured."""

from __future__ import annotations

import time
from pathlib import Path

from PIL import Image

from tests.fixtures import LiveServer, probe

FRAMES = 10_000
LIMIT_KB = 100 * 1024


def peak_rss_kb(pid: int) -> int:
    """VmHWM of a process on this machine (the test sshd runs on loopback)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for pid {pid}")


def test_ten_thousand_images_in_flat_memory(server: LiveServer, remote: str, images: Path,
                                            tmp_path: Path) -> None:
    template = images / "template.png"
    palette = [Image.new("RGB", (32, 24), (i % 256, (i * 7) % 256, (i * 13) % 256))
               for i in range(64)]
    paths = []
    for index in range(FRAMES):
        path = images / f"frame{index:05d}.png"
        palette[index % 64].save(path)
        paths.append(str(path))
    del template
    agent_pid = server.request("GET", f"/remotes/{remote}").json()["agent"]["pid"]
    started = time.monotonic()
    response = server.post_json(f"/remotes/{remote}/videos",
                                {"content-type": "video/mp4", "images": paths})
    assert response.status_code == 202, response.headers.get("X-Slycat-Message")
    status = server.wait_video(remote, response.json()["sid"], timeout=600)
    elapsed = time.monotonic() - started
    assert status["status"] == "succeeded", status
    assert status["frames_done"] == FRAMES
    agent_kb = peak_rss_kb(agent_pid)
    runner_kb = status["runner_max_rss_kb"]
    print(f"\n10,000 images: {elapsed:.1f} s; peak memory: agent {agent_kb / 1024:.1f} MiB, "
          f"job runner {runner_kb / 1024:.1f} MiB ({agent_kb} KiB, {runner_kb} KiB)")
    assert agent_kb < LIMIT_KB, f"agent peaked at {agent_kb} KiB"
    assert runner_kb < LIMIT_KB, f"runner peaked at {runner_kb} KiB"
    video = server.request("GET", status["outputs"][0]["url"])
    (tmp_path / "big.mp4").write_bytes(video.content)
    info = probe(tmp_path / "big.mp4")
    assert info["frames"] == FRAMES
    assert info["duration"] == FRAMES / 25
