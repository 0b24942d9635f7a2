"""Reach: hosts behind one or two bastions (real sshds in network namespaces),
host profiles and ~/.ssh/config, and jump-host failures named as such."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from server.config import HostConfig
from tests.fixtures import SSHD, LiveServer, solid_frames
from tests.netns import Chain


@pytest.fixture
def chain(sshd: SSHD, tmp_path: Path) -> Iterator[Chain]:
    made = Chain(3, sshd, tmp_path)
    yield made
    made.close()


@pytest.fixture
def reach(make_server: Callable[..., LiveServer], chain: Chain, tmp_path: Path) -> LiveServer:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(chain.known_hosts())
    return make_server(ssh={"known_hosts": str(known_hosts), "connect_timeout": 5.0})


def test_a_host_behind_one_bastion(reach: LiveServer, chain: Chain, sshd: SSHD,
                                   images: Path) -> None:
    bastion, target = chain.address(0), chain.address(1)
    direct = reach.post_json("/remotes", {"hostname": target, "username": sshd.user,
                                          "password": sshd.password})
    assert direct.status_code == 502, "the target must not be reachable directly"
    assert direct.json()["errors"][0]["code"] in ("connect-failed", "connect-timeout")

    reach.config.hosts["compute"] = HostConfig(hostname=target, jump=[bastion],
                                               aliases=["compute.cluster.example.org"])
    opened = reach.post_json("/remotes", {"hostname": "compute.cluster.example.org",
                                          "username": sshd.user, "password": sshd.password})
    assert opened.status_code == 200, opened.headers.get("X-Slycat-Message")
    sid = opened.json()["sid"]
    info = reach.request("GET", f"/remotes/{sid}").json()
    assert info["agent"]["jump_hosts"] == [bastion]
    assert info["hostname"] == "compute.cluster.example.org"
    frames = solid_frames(images, [(250, 0, 0), (0, 250, 0), (0, 0, 250)])
    job = reach.post_json(f"/remotes/{sid}/videos", {"content-type": "video/mp4",
                                                     "images": frames})
    assert job.status_code == 202
    status = reach.wait_video(sid, job.json()["sid"])
    assert status["status"] == "succeeded" and status["frames_done"] == 3
    video = reach.request("GET", f"/remotes/{sid}/videos/{job.json()['sid']}")
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"


def test_two_bastions_from_the_servers_ssh_config(reach: LiveServer, chain: Chain,
                                                   sshd: SSHD, tmp_path: Path) -> None:
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(f"""
# as a cluster's documentation would have you write it
Host outer
    HostName {chain.address(0)}
Host middle
    HostName {chain.address(1)}
Host deep deep.example.org
    HostName {chain.address(2)}
    User {sshd.user}
    ProxyJump outer,middle
Host *
    Port 22
""")
    reach.config.ssh.ssh_config = str(ssh_config)
    opened = reach.post_json("/remotes", {"hostname": "deep", "password": sshd.password})
    assert opened.status_code == 200, opened.headers.get("X-Slycat-Message")
    info = reach.request("GET", f"/remotes/{opened.json()['sid']}").json()
    assert info["username"] == sshd.user
    assert info["agent"]["jump_hosts"] == [chain.address(0), chain.address(1)]
    listing = reach.post_json(f"/remotes/{opened.json()['sid']}/browse/etc", {})
    assert listing.status_code == 200 and "hostname" in listing.json()["names"]


def test_jump_host_failures_say_which_host(reach: LiveServer, chain: Chain,
                                           sshd: SSHD) -> None:
    bastion, target = chain.address(0), chain.address(1)
    reach.config.hosts["closed"] = HostConfig(hostname=target, jump=[f"{bastion}:2222"])
    closed = reach.post_json("/remotes", {"hostname": "closed", "username": sshd.user,
                                          "password": sshd.password})
    assert closed.status_code == 502
    assert closed.json()["errors"][0]["code"] == "jump-failed"
    assert closed.headers["X-Slycat-Message"] == (
        f"Could not reach the jump host {bastion}:2222 on the way to {target}.")
    assert "Connection refused" in closed.headers["X-Slycat-Hint"]

    reach.config.hosts["nowhere"] = HostConfig(hostname="10.255.255.1", jump=[bastion])
    behind = reach.post_json("/remotes", {"hostname": "nowhere", "username": sshd.user,
                                          "password": sshd.password})
    assert behind.status_code == 502
    assert behind.headers["X-Slycat-Message"] == (
        f"Could not reach 10.255.255.1 through the jump host {bastion}.")

    reach.config.hosts["compute"] = HostConfig(hostname=target, jump=[bastion])
    refused = reach.post_json("/remotes", {"hostname": "compute", "username": sshd.user,
                                           "password": "not the password"})
    assert refused.status_code == 403
    assert refused.headers["X-Slycat-Message"] == \
        f"Remote authentication failed at the jump host {bastion}."

    reach.config.hosts["typo"] = HostConfig(hostname=target, jump=["user@@bastion"])
    typo = reach.post_json("/remotes", {"hostname": "typo", "username": sshd.user,
                                        "password": sshd.password})
    assert typo.status_code == 400 and typo.json()["errors"][0]["code"] == "jump-config"
