"""Configuration: a TOML file, then environment variables; every value checked
against its declared type, the error naming the file, the key, what was found
and what is expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from server import config as config_module


def test_config_file_sets_options_and_rejects_unknown_ones(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[server]\nport = 9123\nsession-idle-timeout = 60\n'
                    '[ssh]\nknown_hosts = "/etc/ssh/ssh_known_hosts"\n')
    config = config_module.load(str(good), environ={})
    assert config.server.port == 9123
    assert config.server.session_idle_timeout == 60
    assert config.ssh.known_hosts == "/etc/ssh/ssh_known_hosts"
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nprot = 1\n")
    with pytest.raises(config_module.ConfigError, match="unknown setting 'server.prot'"):
        config_module.load(str(bad), environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\n")
    with pytest.raises(config_module.ConfigError, match="not valid TOML"):
        config_module.load(str(broken), environ={})
    for table, line, message in (
            ("webhooks", "concurrency = 0",
             "webhooks.concurrency must be a whole number of at least 1"),
            ("limits", "max_images = -5", "limits.max_images must be a whole number of at "
                                          "least 1")):
        wrong = tmp_path / f"{table}.toml"
        wrong.write_text(f"[{table}]\n{line}\n")
        with pytest.raises(config_module.ConfigError, match=message):
            config_module.load(str(wrong), environ={})
    env = config_module.load(environ={"FRAMEWIRE_TOKEN": "t", "FRAMEWIRE_DATA_DIR": "/d"})
    assert (env.server.token, env.server.data_dir) == ("t", "/d")


@pytest.mark.parametrize("table, line, message", [
    ('hosts."login"', 'session_idle_timeout = 5',
     "unknown setting 'hosts.\"login\".session_idle_timeout'"),
    ("server", 'session_idle_timeout = "one hour"',
     "server.session_idle_timeout must be a number, found a string 'one hour'"),
    ("server", 'port = "8080"', "server.port must be a whole number, found a string '8080'"),
    ("server", "debug = 1", "server.debug must be true or false, found a whole number 1"),
    ('hosts."login"', 'jump = ["bastion", 7]',
     "hosts.\"login\".jump[1] must be a string, found a whole number 7"),
    ('hosts."login"', 'setup = "module load ffmpeg"',
     "hosts.\"login\".setup must be a list of lists of strings, found a string"),
    ("webhooks", 'retry_schedule = [5, "soon"]',
     "webhooks.retry_schedule[1] must be a number, found a string 'soon'"),
    ("local", 'enabled = "yes"', "local.enabled must be true or false, found a string 'yes'"),
    ("server", "session_idle_timeout = 0",
     "server.session_idle_timeout must be a number of seconds above 0"),
])
def test_config_values_are_checked_against_their_types(tmp_path: Path, table: str, line: str,
                                                       message: str) -> None:
    path = tmp_path / "framewire.toml"
    path.write_text(f"[{table}]\n{line}\n")
    with pytest.raises(config_module.ConfigError) as error:
        config_module.load(str(path), environ={})
    assert str(error.value).startswith(f"config file {path}: "), error.value
    assert message in str(error.value)


def test_one_host_or_key_file_may_be_written_without_a_list(tmp_path: Path) -> None:
    path = tmp_path / "framewire.toml"
    path.write_text('[hosts."cluster"]\njump = "bastion.example.org"\n'
                    'client_keys = "/home/me/.ssh/id_ed25519"\n'
                    '[ssh]\nallowed_hosts = "*.example.org"\n')
    config = config_module.load(str(path), environ={})
    assert config.hosts["cluster"].jump == ["bastion.example.org"]
    assert config.hosts["cluster"].client_keys == ["/home/me/.ssh/id_ed25519"]
    assert config.ssh.allowed_hosts == ["*.example.org"]
