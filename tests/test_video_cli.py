"""`framewire video`: a video made through a running server with a progress bar,
Ctrl-C cancels the remote job, exit codes; list, status, download, cancel."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.fixtures import SSHD, LiveServer, frame_colours, probe, solid_frames


def command(server: LiveServer, *args: str, token: str | None = None) -> list[str]:
    framewire = shutil.which("framewire")
    argv = [framewire] if framewire else [sys.executable, "-m", "server.cli"]
    return [*argv, "video", "--server", server.url, *args]


def environment(server: LiveServer, token: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "FRAMEWIRE_TOKEN"}
    env["FRAMEWIRE_TOKEN"] = server.token if token is None else token
    env["COLUMNS"] = "100"
    return env


def video(server: LiveServer, *args: str, password: str = "", token: str | None = None,
          timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(server, *args), input=password + "\n", capture_output=True,
                          text=True, timeout=timeout, env=environment(server, token),
                          check=False)


def test_create_shows_progress_and_writes_the_video(server: LiveServer, sshd: SSHD,
                                                    images: Path, tmp_path: Path) -> None:
    solid_frames(images, [(i * 4, 100, 200 - i * 3) for i in range(40)],
                 names=[f"step{i + 1}.png" for i in range(40)], size=(96, 64))
    out = tmp_path / "run.mp4"
    done = video(server, "create", f"{sshd.user}@127.0.0.1:{sshd.port}:{images}/step*.png",
                 "-o", str(out), "--frame-rate", "20", "--password-stdin",
                 password=sshd.password)
    assert done.returncode == 0, done.stderr
    assert "100%" in done.stderr and "40/40" in done.stderr, done.stderr
    assert f"{out}: 40 frames, 96x64 at 20 fps" in done.stderr
    info = probe(out)
    assert (info["codec"], info["width"], info["height"], info["frames"]) == ("h264", 96, 64, 40)
    assert abs(info["duration"] - 2.0) < 0.06
    assert not Path(f"{out}.part").exists()

    vsid = done.stderr.split("video ", 1)[1].split()[0]
    listed = video(server, "list")
    assert listed.returncode == 0 and vsid in listed.stdout and "succeeded" in listed.stdout
    status = video(server, "status", vsid)
    assert status.returncode == 0 and status.stdout.startswith(f"{vsid}  succeeded  100%")
    again = tmp_path / "again.mp4"
    fetched = video(server, "download", f"{sshd.user}@127.0.0.1:{sshd.port}", vsid,
                    "-o", str(again), "--password-stdin", password=sshd.password)
    assert fetched.returncode == 0, fetched.stderr
    assert again.read_bytes() == out.read_bytes()
    assert server.request("GET", "/admin/sessions").json()["sessions"] == [], \
        "every session the command opened is closed"


def noise_frames(directory: Path, count: int, size: tuple[int, int]) -> None:
    for index in range(count):
        Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(
            directory / f"noise{index:03d}.png", compress_level=1)
        os.chmod(directory / f"noise{index:03d}.png", 0o644)


def test_ctrl_c_cancels_the_remote_job(server: LiveServer, sshd: SSHD, images: Path,
                                       tmp_path: Path) -> None:
    noise_frames(images, 120, (640, 480))
    out = tmp_path / "never.mp4"
    process = subprocess.Popen(
        command(server, "create", f"{sshd.user}@127.0.0.1:{sshd.port}:{images}/noise*.png",
                "-o", str(out), "--crf", "0", "--preset", "veryslow", "--password-stdin"),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=environment(server))
    assert process.stdin and process.stderr
    process.stdin.write(sshd.password + "\n")
    process.stdin.close()
    line = process.stderr.readline()
    assert line.startswith("video "), line
    vsid = line.split()[1]
    deadline = time.monotonic() + 60
    while server.request("GET", "/videos").json()["videos"][0]["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    process.wait(60)
    err = line + process.stderr.read()
    assert process.stdout
    process.stdout.close()
    process.stderr.close()
    assert process.returncode == 130, err
    assert f"interrupted: canceling video {vsid}" in err and f"video {vsid} canceled" in err
    job = server.request("GET", "/videos").json()["videos"][0]
    assert (job["sid"], job["status"]) == (vsid, "canceled")
    assert not out.exists() and not Path(f"{out}.part").exists()


@pytest.mark.parametrize("args, code, message", [
    (["create", "no-path-here", "-o", "x.mp4"], 2, "is not [USER@]HOST[:PORT]:/dir/pattern"),
    (["create", "localhost:/tmp/*.png", "-o", "x.gif"], 2, "must end in .mp4 or .webm"),
    (["status", "0123456789abcdef0123456789abcdef"], 1, "Unknown video"),
])
def test_usage_errors_and_exit_codes(server: LiveServer, args: list[str], code: int,
                                     message: str) -> None:
    result = video(server, *args)
    assert result.returncode == code, result.stderr
    assert message in result.stderr


def test_failures_exit_1_with_the_servers_message(server: LiveServer, sshd: SSHD,
                                                  images: Path, tmp_path: Path) -> None:
    target = f"{sshd.user}@127.0.0.1:{sshd.port}"
    wrong = video(server, "create", f"{target}:{images}/*.png", "-o", str(tmp_path / "a.mp4"),
                  "--password-stdin", password="wrong password")
    assert wrong.returncode == 1
    assert "framewire: Remote authentication failed." in wrong.stderr
    missing = video(server, "create", f"{target}:{images}/nothing*.png",
                    "-o", str(tmp_path / "b.mp4"), "--password-stdin", password=sshd.password)
    assert missing.returncode == 1
    assert f"No file in {images} matches 'nothing*.png'." in missing.stderr
    no_token = video(server, "list", token="")
    assert no_token.returncode == 2 and "set FRAMEWIRE_TOKEN" in no_token.stderr
    bad_token = video(server, "list", token="wrong")
    assert bad_token.returncode == 1 and "Authentication required." in bad_token.stderr
    assert not list(tmp_path.glob("*.mp4*")), "nothing half-written is left"


def test_options_after_the_sub_command_a_directory_and_id_prefixes(
        server: LiveServer, sshd: SSHD, images: Path, tmp_path: Path) -> None:
    numbers = [1, 10, 2, 3, 11, 20]
    solid_frames(images, [(40 * i, 100, 200 - 20 * i) for i in range(len(numbers))],
                 names=[f"img_{n}.png" for n in numbers], size=(64, 48))
    (images / "notes.txt").write_text("not a frame\n")
    target = f"{sshd.user}@127.0.0.1:{sshd.port}"
    out = tmp_path / "dir.mp4"
    framewire = command(server)[:-3]  # the program, without "video --server URL"
    # Options of `framewire video` after its sub-command; HOST:/dir is every image there.
    done = subprocess.run([*framewire, "video", "create", "--server", server.url,
                           f"{target}:{images}", "-o", str(out), "--password-stdin"],
                          input=sshd.password + "\n", capture_output=True, text=True,
                          timeout=180, env=environment(server), check=False)
    assert done.returncode == 0, done.stderr
    info = probe(out)
    assert (info["codec"], info["frames"]) == ("h264", len(numbers))
    natural = [numbers.index(n) for n in sorted(numbers)]  # img_1 img_2 img_3 img_10 …
    reds = [red for red, _, _ in frame_colours(out)]
    assert [round(red / 40) for red in reds] == natural, reds
    vsid = done.stderr.split("video ", 1)[1].split()[0]

    # The 8 characters the web page shows are enough.
    status = video(server, "status", vsid[:8])
    assert status.returncode == 0 and status.stdout.startswith(f"{vsid}  succeeded  100%")
    unknown = video(server, "status", "ffffffff" if not vsid.startswith("ffffffff")
                    else "00000000")
    assert unknown.returncode == 1 and "No video id starts with" in unknown.stderr
    not_an_id = video(server, "status", "run42!")
    assert not_an_id.returncode == 2 and "is not a video id" in not_an_id.stderr

    # A name that does not fit the video's type is refused before any byte is written.
    wrong = video(server, "download", target, vsid[:8], "-o", str(tmp_path / "x.webm"),
                  "--password-stdin", password=sshd.password)
    assert wrong.returncode == 2
    assert f"the video is video/mp4; name the file {tmp_path / 'x'}.mp4" in wrong.stderr
    assert not list(tmp_path.glob("x.*"))
    again = video(server, "download", target, vsid[:8], "-o", str(tmp_path / "again.mp4"),
                  "--password-stdin", password=sshd.password)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again.mp4").read_bytes() == out.read_bytes()


def test_what_used_to_be_tracebacks_are_one_line_messages(server: LiveServer, sshd: SSHD,
                                                          images: Path) -> None:
    solid_frames(images, [(200, 0, 0)] * 3, size=(64, 48))
    target = f"{sshd.user}@127.0.0.1:{sshd.port}"
    # An output path that cannot be written is refused before any encode starts.
    missing_dir = video(server, "create", f"{target}:{images}/*.png",
                        "-o", "/no-such-dir/x.mp4", "--password-stdin", password=sshd.password)
    assert missing_dir.returncode == 2, missing_dir.stderr
    assert "there is no directory /no-such-dir; create it first" in missing_dir.stderr
    assert server.request("GET", "/videos").json()["videos"] == []
    # No terminal to ask the password on: say how to give it.
    no_tty = subprocess.run(command(server, "create", f"{target}:{images}/*.png", "-o",
                                    "/tmp/never.mp4"), stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=60,
                            env=environment(server), start_new_session=True, check=False)
    assert no_tty.returncode == 2, no_tty.stderr
    assert "no terminal to ask the password" in no_tty.stderr
    assert "--password-stdin" in no_tty.stderr and "--no-password" in no_tty.stderr
    for result in (missing_dir, no_tty):
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert server.request("GET", "/admin/sessions").json()["sessions"] == []
