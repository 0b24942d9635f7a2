"""Route resolution: host profiles by name, alias and pattern, the server account's
~/.ssh/config, jump hosts, and which keys the server may log in with."""

from __future__ import annotations

from pathlib import Path

import pytest

from server import config as config_module
from server import errors
from server.config import Config, HostConfig
from server.remote.routes import client_keys, hop, route


def configured(tmp_path: Path, ssh_config: str = "", **hosts: HostConfig) -> Config:
    config = config_module.load(environ={})
    path = tmp_path / "ssh_config"
    path.write_text(ssh_config)
    config.ssh.ssh_config = str(path)
    config.hosts.update(hosts)
    return config


def test_a_profile_is_found_by_name_alias_then_pattern(tmp_path: Path) -> None:
    config = configured(
        tmp_path,
        cluster=HostConfig(aliases=["login.example.org"], hostname="login2.example.org",
                           port=2222, username="fred"),
        **{"*.hpc.example.org": HostConfig(username="hpc")})
    assert (hop(config, "cluster", None, None).hostname, hop(config, "cluster", None, None)
            .port) == ("login2.example.org", 2222)
    by_alias = hop(config, "LOGIN.example.org", None, None)
    assert (by_alias.profile_name, by_alias.username) == ("cluster", "fred")
    by_pattern = hop(config, "node7.hpc.example.org", None, None)
    assert (by_pattern.profile_name, by_pattern.hostname, by_pattern.username) == (
        "*.hpc.example.org", "node7.hpc.example.org", "hpc")
    # What a request names wins over the profile.
    assert hop(config, "cluster", 2200, "alice").username == "alice"
    assert hop(config, "cluster", 2200, "alice").port == 2200


def test_ssh_config_fills_what_the_profile_leaves_out(tmp_path: Path) -> None:
    key = tmp_path / "id_cluster"
    key.write_text("not really a key")
    config = configured(tmp_path, f"""
Host cluster
    HostName login.example.org
    Port 2022
    User fred
    ProxyJump gate.example.org,fred@bastion.example.org:2222
    IdentityFile {key}
""")
    target, jumps = route(config, "cluster", 22, "")
    assert (target.hostname, target.port, target.username) == ("login.example.org", 2022,
                                                              "fred")
    assert [(jump.hostname, jump.port, jump.username) for jump in jumps] == [
        ("gate.example.org", 22, "fred"), ("bastion.example.org", 2222, "fred")]
    assert client_keys(config, "owner", "cluster") == [str(key)]  # token mode: IdentityFile


def test_a_profiles_jump_list_wins_and_is_checked(tmp_path: Path) -> None:
    config = configured(tmp_path, cluster=HostConfig(username="fred", jump=["bad spec !"]))
    with pytest.raises(errors.ServerConfigError) as refused:
        route(config, "cluster", 22, "")
    assert refused.value.code == "jump-config" and refused.value.status == 400
    config.hosts["cluster"].jump = [f"hop{index}" for index in range(9)]
    with pytest.raises(errors.ServerConfigError, match="More than 8 jump hosts."):
        route(config, "cluster", 22, "")
    config.hosts["cluster"].jump = ["[::1]:2222"]
    target, jumps = route(config, "cluster", 22, "")
    assert (jumps[0].hostname, jumps[0].port, jumps[0].username) == ("::1", 2222, "fred")


def test_a_route_needs_a_user(tmp_path: Path) -> None:
    with pytest.raises(errors.ValidationError) as refused:
        route(configured(tmp_path), "cluster.example.org", 22, "")
    assert refused.value.pointer == "/username"


def test_keys_per_profile_serve_only_their_users(tmp_path: Path) -> None:
    config = configured(tmp_path, cluster=HostConfig(client_keys=["/keys/cluster"],
                                                     key_users=["alice"]))
    config.ssh.client_keys = ["/keys/server"]
    assert client_keys(config, "alice", "cluster") == ["/keys/cluster"]
    assert client_keys(config, "bob", "cluster") == ["/keys/server"]  # token mode
    config.auth.mode = "users"
    assert client_keys(config, "bob", "cluster") == []  # users mode: profile keys only
    assert client_keys(config, "bob", "elsewhere") == []
