"""Hostile hosts: a tcsh login shell that prints, a read-only home, no Python,
an old Python, failing set-up commands, an unwritable or full work directory,
no ffmpeg; each start-up failure with its own message and hint."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from server.config import HostConfig
from tests.fixtures import LiveServer, solid_frames
from tests.hosts import HostileSSHD, make_account, pythons, start_hostile_sshd


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileSSHD]:
    accounts = [make_account("fwtcsh", "tcsh"), make_account("fwro", "readonly")]
    daemon = start_hostile_sshd(tmp_path_factory.mktemp("hostile"), accounts)
    yield daemon
    daemon.stop()


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileSSHD]:
    """A host without python3 and without ffmpeg."""
    accounts = [make_account("fwbare", "plain")]
    daemon = start_hostile_sshd(tmp_path_factory.mktemp("bare"), accounts,
                                hide=[*pythons(), "/usr/bin/ffmpeg"])
    yield daemon
    daemon.stop()


@pytest.fixture
def no_ffmpeg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileSSHD]:
    """A host without ffmpeg (and without one provided earlier)."""
    accounts = [make_account("fwnoff", "plain")]
    work = accounts[0].home / ".cache" / "framewire"

    def forget() -> None:
        for provided in work.glob("ffmpeg-*"):
            provided.unlink()
    forget()
    daemon = start_hostile_sshd(tmp_path_factory.mktemp("noff"), accounts,
                                hide=["/usr/bin/ffmpeg"])
    yield daemon
    daemon.stop()
    forget()


def home_of(host: HostileSSHD, work: Path) -> None:
    """Make ``work`` (under the account's home) as the account would have."""
    owner = host.accounts["fwnoff"].home.stat()
    for directory in (work.parent, work):
        directory.mkdir(mode=0o700, exist_ok=True)
        os.chown(directory, owner.st_uid, owner.st_gid)


def open_on(server: LiveServer, host: HostileSSHD, user: str, **extra: Any) -> Any:
    return server.post_json("/remotes", {"hostname": "127.0.0.1", "port": host.port,
                                         "username": user,
                                         "password": host.accounts[user].password, **extra})


def make(make_server: Callable[..., LiveServer], host: HostileSSHD,
         **profile: Any) -> LiveServer:
    server = make_server(ssh={"known_hosts": str(host.known_hosts)})
    if profile:
        server.config.hosts["127.0.0.1"] = HostConfig(**profile)
    return server


def encode(server: LiveServer, sid: str, images: Path) -> dict[str, Any]:
    frames = solid_frames(images, [(10, 20, 30), (40, 50, 60)])
    job = server.post_json(f"/remotes/{sid}/videos", {"content-type": "video/mp4",
                                                      "images": frames})
    assert job.status_code == 202, job.headers.get("X-Slycat-Message")
    return server.wait_video(sid, job.json()["sid"])


def test_a_tcsh_login_shell_that_prints(make_server: Callable[..., LiveServer],
                                        hostile: HostileSSHD, images: Path) -> None:
    said = subprocess.run(["runuser", "-u", "fwtcsh", "--", "tcsh", "-c", "true"],
                          capture_output=True, text=True, check=True)
    assert "Welcome to the csh cluster" in said.stdout and "quota warning" in said.stderr
    server = make(make_server, hostile)
    opened = open_on(server, hostile, "fwtcsh")
    assert opened.status_code == 200, opened.headers.get("X-Slycat-Hint")
    info = server.request("GET", f"/remotes/{opened.json()['sid']}").json()
    assert info["agent"]["state"] == "running"
    assert info["agent"]["python_path"].startswith("/")
    assert encode(server, opened.json()["sid"], images)["status"] == "succeeded"


def test_a_read_only_home_falls_back_with_a_note(make_server: Callable[..., LiveServer],
                                                 hostile: HostileSSHD, images: Path) -> None:
    server = make(make_server, hostile)
    opened = open_on(server, hostile, "fwro")
    assert opened.status_code == 200, opened.headers.get("X-Slycat-Hint")
    info = server.request("GET", f"/remotes/{opened.json()['sid']}").json()
    assert info["agent"]["work_dir"] == "/tmp/framewire-fwro"
    assert info["agent"]["notes"] == [
        "The home directory /home/fwro is not writable (permission denied); the agent and "
        "its jobs use /tmp/framewire-fwro. Set work_dir in this host's profile to choose a "
        "directory."]
    assert oct(os.stat("/tmp/framewire-fwro").st_mode & 0o777) == "0o700"
    assert encode(server, opened.json()["sid"], images)["status"] == "succeeded"
    assert not (hostile.accounts["fwro"].home / ".cache").exists()


def test_no_python_and_an_old_python(make_server: Callable[..., LiveServer],
                                     bare: HostileSSHD, images: Path) -> None:
    server = make(make_server, bare)
    missing = open_on(server, bare, "fwbare")
    assert missing.status_code == 400
    assert missing.json()["errors"][0]["code"] == "no-python"
    assert missing.headers["X-Slycat-Message"] == "No Python 3 on 127.0.0.1:" + str(bare.port) \
        + "."
    assert "needs Python 3.6 or newer" in missing.headers["X-Slycat-Hint"]

    old = images / "python2.7"  # a directory every user can read
    old.write_text("#!/bin/sh\necho 2.7\n")
    old.chmod(0o755)
    server.config.hosts["127.0.0.1"] = HostConfig(python=str(old))
    too_old = open_on(server, bare, "fwbare")
    assert too_old.status_code == 400
    assert too_old.json()["errors"][0]["code"] == "old-python"
    assert too_old.headers["X-Slycat-Message"] == \
        f"Python on 127.0.0.1:{bare.port} is too old: {old} is 2.7."
    assert too_old.headers["X-Slycat-Hint"].startswith(
        "framewire's agent needs Python 3.6 or newer. Install one, or point python")


def test_set_up_commands_and_work_directories(make_server: Callable[..., LiveServer],
                                              hostile: HostileSSHD, images: Path) -> None:
    server = make(make_server, hostile, setup=[["true"], ["test", "-d", "/no/such/module"]])
    failed = open_on(server, hostile, "fwtcsh")
    assert failed.status_code == 400
    assert failed.json()["errors"][0]["code"] == "setup-failed"
    assert failed.headers["X-Slycat-Message"] == \
        f"The set-up command `test -d /no/such/module` failed on 127.0.0.1:{hostile.port}."
    assert failed.headers["X-Slycat-Hint"].endswith(
        "Fix the host's setup list in the configuration.")

    scratch = images / "scratch"
    scratch.mkdir(mode=0o777)
    os.chmod(scratch, 0o777)
    server.config.hosts["127.0.0.1"] = HostConfig(
        work_dir=str(scratch / "fw"), setup=[["export", "FRAMEWIRE_MARK=set"]])
    opened = open_on(server, hostile, "fwtcsh")
    assert opened.status_code == 200, opened.headers.get("X-Slycat-Hint")
    info = server.request("GET", f"/remotes/{opened.json()['sid']}").json()
    assert info["agent"]["work_dir"] == str(scratch / "fw")
    assert encode(server, opened.json()["sid"], images)["status"] == "succeeded"
    assert list((scratch / "fw").glob("agent-*.pyz")) and (scratch / "fw" / "jobs").is_dir()

    server.config.hosts["127.0.0.1"] = HostConfig(work_dir="/proc/framewire")
    unwritable = open_on(server, hostile, "fwtcsh")
    assert unwritable.status_code == 400
    assert unwritable.json()["errors"][0]["code"] == "work-dir"
    assert unwritable.headers["X-Slycat-Message"].startswith(
        f"The work directory /proc/framewire is not writable on 127.0.0.1:{hostile.port}")
    assert "work_dir in the profile of 127.0.0.1" in unwritable.headers["X-Slycat-Hint"]


def test_a_full_work_directory(make_server: Callable[..., LiveServer], hostile: HostileSSHD,
                               images: Path) -> None:
    full = images / "full"
    full.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=1777", "tmpfs", str(full)],
                   check=True)
    try:
        (full / "fw").mkdir(mode=0o777)
        os.chmod(full / "fw", 0o777)
        subprocess.run(["dd", "if=/dev/zero", f"of={full / 'filler'}", "bs=4k"],
                       capture_output=True, check=False)
        server = make(make_server, hostile, work_dir=str(full / "fw"))
        refused = open_on(server, hostile, "fwtcsh")
        assert refused.status_code == 400
        assert refused.json()["errors"][0]["code"] == "work-dir"
        message = refused.headers["X-Slycat-Message"]
        assert message.startswith(f"The work directory {full / 'fw'} is not writable on "
                                  f"127.0.0.1:{hostile.port}: "), message
        assert "work_dir in the profile of 127.0.0.1" in refused.headers["X-Slycat-Hint"]
    finally:
        subprocess.run(["umount", "-l", str(full)], check=False)


def test_a_host_without_ffmpeg_says_so(make_server: Callable[..., LiveServer],
                                       no_ffmpeg: HostileSSHD, images: Path) -> None:
    server = make(make_server, no_ffmpeg)
    opened = open_on(server, no_ffmpeg, "fwnoff")
    assert opened.status_code == 200, opened.headers.get("X-Slycat-Hint")
    sid = opened.json()["sid"]
    info = server.request("GET", f"/remotes/{sid}").json()
    assert info["agent"]["ffmpeg"]["path"] is None
    assert f"No ffmpeg on 127.0.0.1:{no_ffmpeg.port}" in " ".join(info["notes"])
    frames = solid_frames(images, [(1, 2, 3)])
    job = server.post_json(f"/remotes/{sid}/videos", {"content-type": "video/mp4",
                                                      "images": frames})
    assert job.status_code == 400 and job.json()["errors"][0]["code"] == "no-ffmpeg"


def test_the_servers_ffmpeg_is_provisioned_once(make_server: Callable[..., LiveServer],
                                                no_ffmpeg: HostileSSHD, images: Path,
                                                tmp_path: Path) -> None:
    from server.remote.provision import bundled_ffmpeg
    from tests.fixtures import probe

    local, digest, size = bundled_ffmpeg()
    work = no_ffmpeg.accounts["fwnoff"].home / ".cache" / "framewire"
    server = make_server(ssh={"known_hosts": str(no_ffmpeg.known_hosts),
                              "provision_ffmpeg": True})
    # An upload that stopped after 10 MB resumes there.
    home_of(no_ffmpeg, work)
    final = work / f"ffmpeg-{digest[:16]}"
    partial = Path(f"{final}.part")
    with open(local, "rb") as source:
        partial.write_bytes(source.read(10 << 20))
    owner = no_ffmpeg.accounts["fwnoff"].home.stat()
    os.chown(partial, owner.st_uid, owner.st_gid)

    opened = open_on(server, no_ffmpeg, "fwnoff")
    assert opened.status_code == 200, opened.headers.get("X-Slycat-Hint")
    sid = opened.json()["sid"]
    info = server.request("GET", f"/remotes/{sid}").json()
    assert info["agent"]["ffmpeg"]["path"] == str(final)
    assert "h264" in info["agent"]["capabilities"]["encoders"]
    assert info["notes"] == [
        f"Uploaded the server's ffmpeg ({size // 1_000_000} MB, resumed after {10 << 20} "
        f"bytes, SHA-256 verified) to {final}: the host has none usable."]
    assert final.stat().st_size == size and not partial.exists()
    status = encode(server, sid, images)
    assert status["status"] == "succeeded"
    video = tmp_path / "provisioned.mp4"
    video.write_bytes(server.request("GET", f"/remotes/{sid}/videos/{status['sid']}").content)
    assert probe(video)["codec"] == "h264"

    # The next session finds it: no second upload.
    uploaded_at = final.stat().st_mtime_ns
    again = open_on(server, no_ffmpeg, "fwnoff")
    assert again.status_code == 200
    second = server.request("GET", f"/remotes/{again.json()['sid']}").json()
    assert second["agent"]["ffmpeg"]["path"] == str(final) and second["notes"] == []
    assert final.stat().st_mtime_ns == uploaded_at


def test_a_corrupt_partial_upload_is_not_trusted(make_server: Callable[..., LiveServer],
                                                 no_ffmpeg: HostileSSHD) -> None:
    from server.remote.provision import bundled_ffmpeg

    _, digest, size = bundled_ffmpeg()
    work = no_ffmpeg.accounts["fwnoff"].home / ".cache" / "framewire"
    home_of(no_ffmpeg, work)
    partial = work / f"ffmpeg-{digest[:16]}.part"
    partial.write_bytes(b"\0" * (1 << 20))  # not the start of the real file
    owner = no_ffmpeg.accounts["fwnoff"].home.stat()
    os.chown(partial, owner.st_uid, owner.st_gid)
    server = make_server(ssh={"known_hosts": str(no_ffmpeg.known_hosts),
                              "provision_ffmpeg": True})
    opened = open_on(server, no_ffmpeg, "fwnoff")
    assert opened.status_code == 200, opened.headers.get("X-Slycat-Hint")
    final = work / f"ffmpeg-{digest[:16]}"
    assert final.stat().st_size == size
    import hashlib
    assert hashlib.sha256(final.read_bytes()).hexdigest() == digest


def doctor(host: HostileSSHD, user: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    import shutil
    import sys

    config = tmp_path / "doctor.toml"
    config.write_text(f'[ssh]\nknown_hosts = "{host.known_hosts}"\nssh_config = ""\n'
                      f'[server]\ndata_dir = "{tmp_path / "state"}"\n')
    framewire = shutil.which("framewire")
    argv = [framewire] if framewire else [sys.executable, "-m", "server.cli"]
    return subprocess.run([*argv, "doctor", f"{user}@127.0.0.1:{host.port}", "--config",
                           str(config), "--password-stdin"],
                          input=host.accounts[user].password + "\n", capture_output=True,
                          text=True, timeout=120, check=False)


def test_doctor_reports_a_good_host(hostile: HostileSSHD, tmp_path: Path) -> None:
    result = doctor(hostile, "fwtcsh", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"framewire doctor fwtcsh@127.0.0.1:{hostile.port}"
    assert lines[1] == "  [ok  ] logged in to 127.0.0.1 as fwtcsh (ssh)"
    assert lines[2].startswith("  [ok  ] Python 3.") and " at /" in lines[2]
    assert lines[3].startswith("  [ok  ] agent ") and "/home/fwtcsh/.cache/framewire" in lines[3]
    assert lines[4].startswith("  [ok  ] ffmpeg ") and "h264 (libx264)" in lines[4]
    assert lines[-1] == "ready for videos"


def test_doctor_names_what_is_missing(bare: HostileSSHD, no_ffmpeg: HostileSSHD,
                                      tmp_path: Path) -> None:
    no_python = doctor(bare, "fwbare", tmp_path)
    assert no_python.returncode == 1
    assert f"  [FAIL] No Python 3 on 127.0.0.1:{bare.port}." in no_python.stdout
    assert "needs Python 3.6 or newer" in no_python.stdout
    no_video = doctor(no_ffmpeg, "fwnoff", tmp_path)
    assert no_video.returncode == 1
    assert f"  [FAIL] No ffmpeg on 127.0.0.1:{no_ffmpeg.port}: no video can be made" \
        in no_video.stdout
    assert no_video.stdout.splitlines()[-1] == "not ready: see FAIL above"


def test_an_ffmpeg_without_encoders_is_named(make_server: Callable[..., LiveServer],
                                             hostile: HostileSSHD, images: Path) -> None:
    fake = images / "ffmpeg"
    fake.write_text('#!/bin/sh\ncase "$*" in *-version*) echo "ffmpeg version 0.1-tiny";; '
                    'esac\nexit 0\n')
    fake.chmod(0o755)
    server = make(make_server, hostile, ffmpeg=str(fake))
    opened = open_on(server, hostile, "fwtcsh")
    assert opened.status_code == 200
    info = server.request("GET", f"/remotes/{opened.json()['sid']}").json()
    assert info["notes"] == [f"The ffmpeg on 127.0.0.1:{hostile.port} ({fake}) has no H.264, "
                             "VP9 or AV1 encoder: no video can be made with it."]
    frames = solid_frames(images, [(5, 5, 5)])
    job = server.post_json(f"/remotes/{opened.json()['sid']}/videos",
                           {"content-type": "video/mp4", "images": frames})
    assert job.status_code == 400 and job.json()["errors"][0]["code"] == "no-encoder"
