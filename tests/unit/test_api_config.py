"""daemon.json: docker's keys that sampan honours; anything else refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from sampan.engine.config import load_config, parse_config
from sampan.errors import InvalidArgument


def test_known_keys(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(
        '{"registry-mirrors": ["https://mirror.example"], "insecure-registries": '
        '["10.0.0.1:5000"], "debug": true, "hosts": ["unix:///tmp/s.sock"]}'
    )
    config = load_config(str(path))
    assert config.registry_mirrors == ("https://mirror.example",)
    assert config.insecure_registries == ("10.0.0.1:5000",)
    assert config.debug is True and config.hosts == ("unix:///tmp/s.sock",)
    with pytest.raises(AttributeError):
        config.debug = False  # type: ignore[misc]


def test_missing_and_empty_files_are_empty_configs(tmp_path: Path) -> None:
    assert load_config(str(tmp_path / "none.json")).registry_mirrors == ()
    assert parse_config(b"  \n", "x").debug is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b'{"storage-driver": "zfs"}', "unknown configuration key 'storage-driver'"),
        (b'{"debug": "yes"}', "debug: expected a bool"),
        (b'{"registry-mirrors": "https://m"}', "registry-mirrors: expected a list"),
        (b'{"insecure-registries": [1]}', "insecure-registries: expected a list of non-empty"),
        (b"[1]", "expected a JSON object"),
        (b'{"debug": tru', "not valid JSON"),
    ],
)
def test_bad_configs_name_the_key(text: bytes, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_config(text, "/etc/sampan/daemon.json")


def test_network_settings() -> None:
    text = (
        b'{"bridge": "br0", "bip": "10.5.0.1/24", "fixed-cidr": "10.5.0.128/25",'
        b' "dns": ["1.1.1.1"]}'
    )
    config = parse_config(text, "daemon.json")
    assert (config.bridge, config.bip, config.fixed_cidr, config.dns) == (
        "br0", "10.5.0.1/24", "10.5.0.128/25", ("1.1.1.1",))  # fmt: skip
    assert config.replace(bridge="none", bip="", fixed_cidr="").bridge == "none"
    for bad, message in (
        (b'{"bip": "10.5.0.1"}', "--bip"),
        (b'{"bip": "10.5.0.0/24"}', "--bip"),  # the network address is no gateway
        (b'{"bip": "10.5.0.1/24", "fixed-cidr": "10.6.0.0/25"}', "--fixed-cidr"),
        (b'{"dns": ["dns.example"]}', "--dns"),
        (b'{"bridge": "a-name-longer-than-15"}', "--bridge"),
        (b'{"bridge": "none", "bip": "10.5.0.1/24"}', "--bip"),
    ):
        with pytest.raises(InvalidArgument, match=message):
            parse_config(bad, "daemon.json")
