"""runtime.cgroup.effective_resources: the device rules every container gets."""

from __future__ import annotations

import copy
from typing import Any

from sampan.runtime.cgroup import effective_resources
from sampan.runtime.rootfs import DEFAULT_DEVICE_RULES

DENY_ALL = {"allow": False, "access": "rwm"}


def default_rules() -> list[dict[str, Any]]:
    out = []
    for kind, major, minor, access in DEFAULT_DEVICE_RULES:
        rule: dict[str, Any] = {"allow": True, "type": kind, "access": access}
        if major is not None:
            rule["major"] = major
        if minor is not None:
            rule["minor"] = minor
        out.append(rule)
    return out


def test_no_linux_section_still_gets_the_default_rules() -> None:
    # The device list is always the whole allow-list: no rules is not "all devices".
    assert effective_resources({}) == {"devices": default_rules()}


def test_no_rules_and_no_devices_gets_the_defaults() -> None:
    resources = {"memory": {"limit": 1 << 20}, "pids": {"limit": 10}}
    config = {"linux": {"resources": resources}}
    assert effective_resources(config) == {**resources, "devices": default_rules()}
    assert "devices" not in resources  # the config itself is not changed


def test_null_resources() -> None:
    assert effective_resources({"linux": {"resources": None}}) == {"devices": default_rules()}


def test_empty_device_list_gets_the_defaults() -> None:
    config = {"linux": {"resources": {"devices": []}}}
    assert effective_resources(config) == {"devices": default_rules()}


def test_deny_all_then_defaults() -> None:
    out = effective_resources(
        {"linux": {"resources": {"devices": [DENY_ALL], "pids": {"limit": 5}}}}
    )
    assert out["devices"] == [DENY_ALL, *default_rules()]
    assert out["pids"] == {"limit": 5}


def test_config_rules_keep_their_order_before_the_defaults() -> None:
    mine = [DENY_ALL, {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"}]
    out = effective_resources({"linux": {"resources": {"devices": mine}}})
    assert out["devices"][:2] == mine
    assert out["devices"][2:] == default_rules()


def test_defaults_include_null_ptys_and_tun() -> None:
    rules = effective_resources({"linux": {"resources": {"devices": [DENY_ALL]}}})["devices"]
    allowed = {(r["type"], r.get("major"), r.get("minor")) for r in rules if r["allow"]}
    assert ("c", 1, 3) in allowed  # /dev/null
    assert ("c", 136, None) in allowed  # /dev/pts/*
    assert ("c", 5, 2) in allowed  # /dev/ptmx
    assert ("c", 10, 200) in allowed  # /dev/net/tun


def test_config_devices_get_allow_rules() -> None:
    config = {
        "linux": {
            "resources": {"devices": [DENY_ALL]},
            "devices": [
                {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
                {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0},
            ],
        }
    }
    rules = effective_resources(config)["devices"]
    assert rules[-2:] == [
        {"allow": True, "type": "c", "access": "rwm", "major": 10, "minor": 229},
        {"allow": True, "type": "b", "access": "rwm", "major": 8, "minor": 0},
    ]


def test_unbuffered_char_device_becomes_c() -> None:
    config = {"linux": {"devices": [{"path": "/dev/u", "type": "u", "major": 4, "minor": 64}]}}
    rules = effective_resources(config)["devices"]
    assert rules[-1] == {"allow": True, "type": "c", "access": "rwm", "major": 4, "minor": 64}


def test_pipes_are_skipped() -> None:
    config = {"linux": {"devices": [{"path": "/dev/fifo", "type": "p"}]}}
    rules = effective_resources(config)["devices"]
    assert rules == default_rules()


def test_devices_without_resources_still_get_defaults() -> None:
    config = {"linux": {"devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]}}
    rules = effective_resources(config)["devices"]
    assert rules[: len(DEFAULT_DEVICE_RULES)] == default_rules()
    assert len(rules) == len(DEFAULT_DEVICE_RULES) + 1


def test_config_is_not_modified() -> None:
    config = {
        "linux": {
            "resources": {"devices": [DENY_ALL], "memory": {"limit": 1}},
            "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}],
        }
    }
    before = copy.deepcopy(config)
    effective_resources(config)
    assert config == before
