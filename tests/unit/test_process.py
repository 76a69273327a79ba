"""runtime.process, the parts above the syscalls: env, PATH lookup, rlimit and label checks."""

from __future__ import annotations

import os
import pwd
import resource
from pathlib import Path

import pytest

from sampan.errors import InvalidArgument, NotFound, Unsupported
from sampan.runtime import process
from sampan.runtime.process import (
    CAP_SYS_RESOURCE,
    DEFAULT_PATH,
    check_rlimits,
    check_security_labels,
    environment,
    lookup_executable,
)

UNLIKELY_UID = 0x7FFF_FFF0

# -- environment ----------------------------------------------------------------------


def test_environment_parses_name_value() -> None:
    env = environment({"env": ["A=1", "B=two=2", "EMPTY=", "HOME=/h"]})
    assert env == {"A": "1", "B": "two=2", "EMPTY": "", "HOME": "/h"}


def test_environment_later_duplicate_wins() -> None:
    assert environment({"env": ["A=1", "A=2", "HOME=/"]})["A"] == "2"


def test_home_kept_when_given() -> None:
    assert environment({"env": ["HOME=/custom"], "user": {"uid": 0}})["HOME"] == "/custom"


def test_home_defaults_from_passwd() -> None:
    try:
        expected = pwd.getpwuid(0).pw_dir or "/"
    except KeyError:
        expected = "/"
    assert environment({})["HOME"] == expected
    assert environment({"user": {"uid": 0}})["HOME"] == expected


def test_home_defaults_to_slash_for_unknown_uid() -> None:
    env = environment({"env": ["PATH=/bin"], "user": {"uid": UNLIKELY_UID}})
    assert env == {"PATH": "/bin", "HOME": "/"}


# -- lookup_executable ----------------------------------------------------------------


def make_exe(path: Path, mode: int = 0o755) -> Path:
    path.write_text("#!/bin/sh\n")
    path.chmod(mode)
    return path


def test_lookup_on_path(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = make_exe(bindir / "tool")
    env = {"PATH": f"{tmp_path}/empty:{bindir}"}
    assert lookup_executable("tool", env, "/") == str(exe)


def test_lookup_takes_the_first_match(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    make_exe(second / "tool")
    make_exe(first / "tool")
    assert lookup_executable("tool", {"PATH": f"{first}:{second}"}, "/") == f"{first}/tool"


def test_lookup_skips_non_executables_and_directories(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for d in (a, b, c):
        d.mkdir()
    make_exe(a / "tool", 0o644)
    (b / "tool").mkdir()
    make_exe(c / "tool")
    assert lookup_executable("tool", {"PATH": f"{a}:{b}:{c}"}, "/") == f"{c}/tool"


def test_lookup_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as info:
        lookup_executable("x", {"PATH": str(tmp_path)}, "/")
    assert str(info.value) == 'exec: "x": executable file not found in $PATH'


def test_lookup_without_path_uses_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    real_isfile = os.path.isfile

    def isfile(path: str) -> bool:
        seen.append(path)
        return real_isfile(path)

    monkeypatch.setattr(os.path, "isfile", isfile)
    with pytest.raises(NotFound):
        lookup_executable("no-such-program-here", {}, "/")
    assert seen == [f"{d}/no-such-program-here" for d in DEFAULT_PATH.split(":")]


def test_lookup_absolute_path(tmp_path: Path) -> None:
    exe = make_exe(tmp_path / "tool")
    assert lookup_executable(str(exe), {"PATH": ""}, "/elsewhere") == str(exe)


def test_lookup_relative_path_with_a_slash_is_from_cwd(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    exe = make_exe(tmp_path / "sub" / "tool")
    assert lookup_executable("sub/tool", {"PATH": "/nonexistent"}, str(tmp_path)) == str(exe)
    assert lookup_executable("./sub/tool", {}, str(tmp_path)) == f"{tmp_path}/./sub/tool"


def test_lookup_path_with_slash_missing(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as info:
        lookup_executable("./nope", {}, str(tmp_path))
    assert str(info.value) == 'exec: "./nope": no such file or directory'


def test_lookup_path_with_slash_not_executable(tmp_path: Path) -> None:
    make_exe(tmp_path / "data", 0o644)
    with pytest.raises(InvalidArgument) as info:
        lookup_executable(str(tmp_path / "data"), {}, "/")
    assert str(info.value) == f'exec: "{tmp_path}/data": permission denied'


def test_lookup_path_with_slash_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="permission denied"):
        lookup_executable(str(tmp_path), {}, "/")


# -- check_rlimits --------------------------------------------------------------------


def nofile_hard() -> int:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        pytest.skip("RLIMIT_NOFILE has no hard limit here")
    return hard


def no_cap(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    asked: list[int] = []

    def has_cap(bit: int) -> bool:
        asked.append(bit)
        return False

    monkeypatch.setattr(process, "has_cap", has_cap)
    return asked


def test_rlimit_within_hard_limit_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    hard = nofile_hard()
    asked = no_cap(monkeypatch)
    check_rlimits({"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": hard}]})
    check_rlimits({"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}]})
    assert asked == []


def test_no_rlimits_passes() -> None:
    check_rlimits({})
    check_rlimits({"rlimits": []})


def test_rlimit_above_hard_limit_without_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    hard = nofile_hard()
    asked = no_cap(monkeypatch)
    rlimits = [
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
        {"type": "RLIMIT_NOFILE", "soft": 1, "hard": hard + 1},
    ]
    with pytest.raises(InvalidArgument) as info:
        check_rlimits({"rlimits": rlimits})
    msg = str(info.value)
    assert msg.startswith("config.json: process.rlimits[1]: RLIMIT_NOFILE hard limit ")
    assert f"{hard + 1} is above this host's {hard}" in msg
    assert "CAP_SYS_RESOURCE" in msg
    assert asked == [CAP_SYS_RESOURCE]


def test_rlimit_check_uses_the_field_name(monkeypatch: pytest.MonkeyPatch) -> None:
    hard = nofile_hard()
    no_cap(monkeypatch)
    with pytest.raises(InvalidArgument, match=r"^config\.json: exec\.rlimits\[0\]: "):
        check_rlimits({"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": hard + 1}]}, "exec")


def test_rlimit_above_hard_limit_with_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    hard = nofile_hard()
    monkeypatch.setattr(process, "has_cap", lambda bit: True)
    check_rlimits({"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": hard + 1}]})


def test_has_cap_reads_proc() -> None:
    with open("/proc/self/status") as f:
        line = next(ln for ln in f if ln.startswith("CapEff:"))
    eff = int(line.split()[1], 16)
    for bit in (0, CAP_SYS_RESOURCE, 21):
        assert process.has_cap(bit) == bool(eff >> bit & 1)


# -- check_security_labels ------------------------------------------------------------


def test_no_labels_pass() -> None:
    check_security_labels({})
    check_security_labels({"apparmorProfile": "", "selinuxLabel": ""}, {"mountLabel": ""})
    check_security_labels({}, None)


@pytest.mark.parametrize("enabled", [True, False])
def test_apparmor_profile_is_refused(monkeypatch: pytest.MonkeyPatch, enabled: bool) -> None:
    monkeypatch.setattr(process, "_lsm_enabled", lambda name: enabled)
    with pytest.raises(Unsupported) as info:
        check_security_labels({"apparmorProfile": "docker-default"})
    msg = str(info.value)
    assert msg.startswith("config.json: process.apparmorProfile: ")
    assert ("not enabled on this host" in msg) is not enabled


def test_selinux_label_is_refused() -> None:
    with pytest.raises(Unsupported, match=r"^config\.json: process\.selinuxLabel: "):
        check_security_labels({"selinuxLabel": "system_u:system_r:container_t:s0"})


def test_mount_label_is_refused() -> None:
    with pytest.raises(Unsupported, match=r"^config\.json: linux\.mountLabel: "):
        check_security_labels({}, {"mountLabel": "system_u:object_r:container_file_t:s0"})
