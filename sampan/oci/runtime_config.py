"""The OCI runtime configuration (config.json): load, validate, default.

The runtime works on the validated JSON object itself (a dict), because
every field is read exactly once on the way to a system call; this module
is where its shape is checked, so that the runtime can trust it.  Every
error names the field: ``config.json: process.args: must be a non-empty
list of strings``.  Nothing here does I/O except ``load_config``.
"""

from __future__ import annotations

from sampan import _json
from sampan.errors import InvalidArgument, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

OCI_VERSION = "1.0.2"

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")
DEVICE_TYPES = ("c", "b", "u", "p")
HOOK_KINDS = (
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
)
PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable",
                "runbindable")  # fmt: skip


def load_config(bundle: str) -> dict[str, Any]:
    """Read and validate ``BUNDLE/config.json``."""
    path = bundle.rstrip("/") + "/config.json"
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise NotFound(f"{path}: no such file (is --bundle right?)") from None
    except OSError as exc:
        raise InvalidArgument(f"{path}: {exc.strerror}") from None
    try:
        config = _json.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"{path}: malformed JSON: {exc}") from None
    validate(config)
    return config  # type: ignore[no-any-return]


def _fail(field: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"config.json: {field}: {why}")


def _obj(value: object, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(field, "must be an object")
    return value


def _str(value: object, field: str, absolute: bool = False) -> str:
    if not isinstance(value, str):
        raise _fail(field, "must be a string")
    if absolute and not value.startswith("/"):
        raise _fail(field, f"must be an absolute path, not {value!r}")
    return value


def _int(value: object, field: str, lo: int | None = None, hi: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(field, "must be an integer")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise _fail(field, f"{value} is out of range [{lo}, {hi}]")
    return value


def _bool(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(field, "must be true or false")
    return value


def _list(value: object, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(field, "must be a list")
    return value


def _strs(value: object, field: str) -> list[str]:
    items = _list(value, field)
    for i, item in enumerate(items):
        _str(item, f"{field}[{i}]")
    return items


def _str_map(value: object, field: str) -> None:
    for key, item in _obj(value, field).items():
        _str(item, f"{field}.{key}")


def validate(config: object) -> None:
    """Check the shape of a config.json object; raise InvalidArgument at the first fault."""
    cfg = _obj(config, "(top level)")
    _str(cfg.get("ociVersion"), "ociVersion")
    root = _obj(cfg.get("root"), "root")
    _str(root.get("path"), "root.path")
    if not root["path"]:
        raise _fail("root.path", "must not be empty")
    if "readonly" in root:
        _bool(root["readonly"], "root.readonly")
    if "process" in cfg:
        validate_process(cfg["process"], "process")
    for key in ("hostname", "domainname"):
        if key in cfg:
            _str(cfg[key], key)
    for i, m in enumerate(_list(cfg.get("mounts", []), "mounts")):
        _mount(m, f"mounts[{i}]")
    if "hooks" in cfg:
        hooks = _obj(cfg["hooks"], "hooks")
        for kind, entries in hooks.items():
            if kind not in HOOK_KINDS:
                raise _fail(f"hooks.{kind}", "unknown hook kind")
            for i, hook in enumerate(_list(entries, f"hooks.{kind}")):
                validate_hook(hook, f"hooks.{kind}[{i}]")
    if "annotations" in cfg:
        _str_map(cfg["annotations"], "annotations")
    _linux(_obj(cfg.get("linux", {}), "linux"), cfg)


def validate_hook(hook: object, field: str) -> None:
    h = _obj(hook, field)
    _str(h.get("path"), f"{field}.path", absolute=True)
    if "args" in h:
        _strs(h["args"], f"{field}.args")
    if "env" in h:
        _strs(h["env"], f"{field}.env")
    if "timeout" in h:
        _int(h["timeout"], f"{field}.timeout", lo=1)


def validate_process(process: object, field: str = "process") -> None:
    """Check a process object (config.json's, or ``exec --process``'s)."""
    p = _obj(process, field)
    args = p.get("args")
    if not isinstance(args, list) or not args:
        raise _fail(f"{field}.args", "must be a non-empty list of strings")
    _strs(args, f"{field}.args")
    _str(p.get("cwd", "/"), f"{field}.cwd", absolute=True)
    for i, item in enumerate(_strs(p.get("env", []), f"{field}.env")):
        if "=" not in item:
            raise _fail(f"{field}.env[{i}]", f"{item!r} is not NAME=VALUE")
    if "terminal" in p:
        _bool(p["terminal"], f"{field}.terminal")
    if "consoleSize" in p:
        size = _obj(p["consoleSize"], f"{field}.consoleSize")
        _int(size.get("height"), f"{field}.consoleSize.height", lo=0)
        _int(size.get("width"), f"{field}.consoleSize.width", lo=0)
    user = _obj(p.get("user", {}), f"{field}.user")
    for key in ("uid", "gid"):
        _int(user.get(key, 0), f"{field}.user.{key}", lo=0, hi=0xFFFFFFFE)
    if "umask" in user:
        _int(user["umask"], f"{field}.user.umask", lo=0, hi=0o777)
    for i, gid in enumerate(_list(user.get("additionalGids", []), f"{field}.user.additionalGids")):
        _int(gid, f"{field}.user.additionalGids[{i}]", lo=0, hi=0xFFFFFFFE)
    if "capabilities" in p:
        caps = _obj(p["capabilities"], f"{field}.capabilities")
        for kind, names in caps.items():
            if kind not in ("bounding", "effective", "permitted", "inheritable", "ambient"):
                raise _fail(f"{field}.capabilities.{kind}", "unknown capability set")
            _strs(names, f"{field}.capabilities.{kind}")
    seen: set[str] = set()
    for i, rl in enumerate(_list(p.get("rlimits", []), f"{field}.rlimits")):
        where = f"{field}.rlimits[{i}]"
        rl = _obj(rl, where)
        kind = _str(rl.get("type"), f"{where}.type")
        if not kind.startswith("RLIMIT_"):
            raise _fail(f"{where}.type", f"unknown rlimit {kind!r}")
        if kind in seen:
            raise _fail(f"{where}.type", f"{kind} given twice")
        seen.add(kind)
        soft = _int(rl.get("soft"), f"{where}.soft", lo=0)
        hard = _int(rl.get("hard"), f"{where}.hard", lo=0)
        if soft > hard:
            raise _fail(where, f"{kind} soft limit {soft} is above its hard limit {hard}")
    if "noNewPrivileges" in p:
        _bool(p["noNewPrivileges"], f"{field}.noNewPrivileges")
    if "oomScoreAdj" in p:
        _int(p["oomScoreAdj"], f"{field}.oomScoreAdj", lo=-1000, hi=1000)
    for key in ("apparmorProfile", "selinuxLabel"):
        if key in p:
            _str(p[key], f"{field}.{key}")


def _mount(mount: object, field: str) -> None:
    m = _obj(mount, field)
    _str(m.get("destination"), f"{field}.destination", absolute=True)
    for key in ("type", "source"):
        if key in m:
            _str(m[key], f"{field}.{key}")
    _strs(m.get("options", []), f"{field}.options")
    for key in ("uidMappings", "gidMappings"):
        if m.get(key):
            raise _fail(f"{field}.{key}", "id-mapped mounts are not supported yet")


def _linux(linux: dict[str, Any], cfg: dict[str, Any]) -> None:
    kinds: set[str] = set()
    for i, ns in enumerate(_list(linux.get("namespaces", []), "linux.namespaces")):
        where = f"linux.namespaces[{i}]"
        ns = _obj(ns, where)
        kind = _str(ns.get("type"), f"{where}.type")
        if kind not in NAMESPACE_TYPES:
            raise _fail(f"{where}.type", f"unknown namespace type {kind!r}")
        if kind in kinds:
            raise _fail(f"{where}.type", f"namespace {kind!r} given twice")
        kinds.add(kind)
        if "path" in ns:
            _str(ns["path"], f"{where}.path", absolute=True)
    for key in ("uidMappings", "gidMappings"):
        for i, mp in enumerate(_list(linux.get(key, []), f"linux.{key}")):
            where = f"linux.{key}[{i}]"
            mp = _obj(mp, where)
            for part in ("containerID", "hostID", "size"):
                _int(mp.get(part), f"{where}.{part}", lo=0, hi=0xFFFFFFFF)
    if (linux.get("uidMappings") or linux.get("gidMappings")) and "user" not in kinds:
        raise _fail("linux.uidMappings", "id mappings need a user namespace")
    if cfg.get("hostname") and "uts" not in kinds:
        raise _fail("hostname", "setting a hostname needs a private uts namespace")
    if cfg.get("domainname") and "uts" not in kinds:
        raise _fail("domainname", "setting a domainname needs a private uts namespace")
    for i, dev in enumerate(_list(linux.get("devices", []), "linux.devices")):
        where = f"linux.devices[{i}]"
        dev = _obj(dev, where)
        _str(dev.get("path"), f"{where}.path", absolute=True)
        kind = _str(dev.get("type"), f"{where}.type")
        if kind not in DEVICE_TYPES:
            raise _fail(f"{where}.type", f"unknown device type {kind!r}")
        if kind != "p":
            _int(dev.get("major"), f"{where}.major", lo=0)
            _int(dev.get("minor"), f"{where}.minor", lo=0)
        for key in ("fileMode", "uid", "gid"):
            if key in dev:
                _int(dev[key], f"{where}.{key}", lo=0)
    if "cgroupsPath" in linux:
        _str(linux["cgroupsPath"], "linux.cgroupsPath")
    if linux.get("resources") is not None:
        _obj(linux["resources"], "linux.resources")  # its fields: sampan.cgroups
    if "sysctl" in linux:
        _str_map(linux["sysctl"], "linux.sysctl")
    if linux.get("seccomp") is not None:
        _obj(linux["seccomp"], "linux.seccomp")  # its fields: sampan.linux.seccomp
    for key in ("maskedPaths", "readonlyPaths"):
        for i, path in enumerate(_strs(linux.get(key, []), f"linux.{key}")):
            _str(path, f"linux.{key}[{i}]", absolute=True)
    if "rootfsPropagation" in linux:
        prop = _str(linux["rootfsPropagation"], "linux.rootfsPropagation")
        if prop not in PROPAGATIONS:
            raise _fail("linux.rootfsPropagation", f"unknown propagation {prop!r}")
    if "mountLabel" in linux:
        _str(linux["mountLabel"], "linux.mountLabel")
    if linux.get("intelRdt"):
        raise _fail("linux.intelRdt", "Intel RDT is not supported")
    if "personality" in linux:
        pers = _obj(linux["personality"], "linux.personality")
        if pers.get("domain") not in ("LINUX", "LINUX32"):
            raise _fail("linux.personality.domain", "must be LINUX or LINUX32")
        if pers.get("flags"):
            raise _fail("linux.personality.flags", "personality flags are not supported")
    if linux.get("timeOffsets"):
        raise _fail("linux.timeOffsets", "time namespace offsets are not supported yet")


def default_spec(rootless: bool = False) -> dict[str, Any]:
    """The config.json that ``sampan-runtime spec`` writes (the same as runc's)."""
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ],
            "cwd": "/",
            "capabilities": {k: list(caps) for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "sampan",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": [
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620",
                    "gid=5",
                ],
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            },
            {
                "destination": "/dev/mqueue",
                "type": "mqueue",
                "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
            },
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            },
            {
                "destination": "/sys/fs/cgroup",
                "type": "cgroup",
                "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
            },
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": [
                "/proc/acpi",
                "/proc/asound",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/timer_stats",
                "/proc/sched_debug",
                "/sys/firmware",
                "/proc/scsi",
            ],
            "readonlyPaths": [
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger",
            ],
        },
    }
    if rootless:
        linux = spec["linux"]
        linux["namespaces"].append({"type": "user"})
        linux["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 1}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 1}]
        linux.pop("resources")
    return spec
