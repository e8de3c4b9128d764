"""Config loading: defaults, TOML sections, overrides, named errors for unknown keys and bad types."""

from __future__ import annotations

from pathlib import Path

import pytest

from osd import config


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OSD_SOCKET", raising=False)
    c = config.load()
    assert c.server.socket.endswith("hero/var/sockets/hero_db_root_os.sock") and not c.server.socket.startswith("~")
    assert c.server.max_body_bytes == 1 << 20 and c.server.max_batch == 100
    assert c.net.input_policy == "accept" and c.vol.label_prefix == "MOS" and c.vol.allowed_devices is None


def test_file_then_env_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "osd.toml"
    path.write_text('[server]\nsocket = "/from/file"\nmax_batch = 7\n[net]\ninput_policy = "drop"\n'
                    '[vol]\nprotected_devices = ["/dev/sda*"]\n[proxy]\ndeadline_s = 2.5\n')
    monkeypatch.delenv("OSD_SOCKET", raising=False)
    assert config.load(path).server.socket == "/from/file"
    monkeypatch.setenv("OSD_SOCKET", "/from/env")
    c = config.load(path)
    assert c.server.socket == "/from/env" and c.server.max_batch == 7 and c.net.input_policy == "drop"
    assert c.vol.protected_devices == ("/dev/sda*",) and c.proxy.deadline_s == 2.5
    c = config.load(path, overrides={"server": {"socket": "/from/flag", "acl": None}})
    assert c.server.socket == "/from/flag" and c.server.acl is None


@pytest.mark.parametrize("text, problem", [
    ("[servr]\n", "unknown section [servr]"),
    ("[server]\nsockets = 'x'\n", "unknown key 'sockets'"),
    ("[server]\nmax_batch = 0\n", "max_batch must be a positive integer"),
    ("[server]\nmax_batch = true\n", "max_batch must be a positive integer"),
    ("[net]\ninput_policy = 'reject'\n", "input_policy must be 'accept' or 'drop'"),
    ("[vol]\nallowed_devices = '/dev/sdb'\n", "allowed_devices must be an array of non-empty strings"),
    ("[server]\nbackend = 'docker'\n", "backend must be 'native' or 'proxy'"),
    ("not toml = = 1", "not valid TOML"),
])
def test_bad_config_is_refused_with_the_key_named(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "osd.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError) as err:
        config.load(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_renames_are_checked() -> None:
    assert config.load(renames={"net": "mosnet"}).renames == {"net": "mosnet"}
    with pytest.raises(config.ConfigError, match="NS must be net or vol"):
        config.load(renames={"rpc": "x"})


def test_every_option_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for section, keys in config.documented().items():
        for key, _, _ in keys:
            assert f"`{key}`" in readme, f"[{section}] {key} is not documented in README.md"
