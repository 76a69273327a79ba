"""A create request and an image's config -> a container's Config, and then an OCI config.json.

Pure functions, no I/O: the engine reads the files (the image config, the
rootfs's /etc/passwd) and writes the results.  The rules are dockerd's:

  - Cmd/Entrypoint: an Entrypoint in the request (even ``[""]``, the CLI's
    ``--entrypoint ""``) replaces the image's and drops the image's Cmd;
    otherwise the image's Entrypoint stays and the request's Cmd, when not
    empty, replaces the image's.  Entrypoint + Cmd is the command.
  - Env: the image's, then the request's, a name given twice keeps the
    request's value; the process also gets PATH (when neither sets it) and
    HOSTNAME, as dockerd adds them.
  - WorkingDir, User, StopSignal: the request's, else the image's; Labels
    merged; Hostname defaults to the short id.  StopTimeout and Healthcheck
    (field by field over the image's) come from lifecycle.config_fields.
  - The OCI spec: docker's default capability set, masked and read-only
    /proc paths, /dev/shm of 64 MiB, /etc/hosts, /etc/hostname and
    /etc/resolv.conf bind-mounted from files the engine writes.

Network modes: "host" shares the daemon's namespace; every other mode has one of its
own -- made by the runtime with loopback only ("none"; the default network of a daemon
run with --bridge none) or by the engine and wired to bridges (network_attach.py), whose
path the spec then names.
"""

from __future__ import annotations

from sampan.errors import InvalidArgument, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "DEFAULT_CAPABILITIES",
    "DEFAULT_PATH",
    "check_host_config",
    "check_name",
    "hosts_file",
    "merge_config",
    "network_namespace",
    "oci_spec",
    "resolv_conf",
]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)  # fmt: skip
MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
)  # fmt: skip
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
SHM_SIZE = 64 << 20
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")

# Request fields this slice acts on; a HostConfig field outside this set with a
# non-empty value is refused (501), never silently ignored.
_HOST_CONFIG_KEYS = frozenset(
    ("NetworkMode", "AutoRemove", "ReadonlyRootfs", "RestartPolicy", "LogConfig",
     "ConsoleSize", "Isolation")
)  # fmt: skip


def check_name(name: str) -> str:
    """docker's container name rule, /[a-zA-Z0-9][a-zA-Z0-9_.-]+; returns it without '/'."""
    bare = name[1:] if name.startswith("/") else name
    if (
        len(bare) < 2
        or not bare[0].isascii()
        or not bare[0].isalnum()
        or not set(bare) <= NAME_CHARS
    ):
        raise InvalidArgument(
            f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )
    return bare


def _strs(value: object, field: str) -> list[str] | None:
    """A string list field (a plain string counts as one element, as docker's StrSlice)."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{field}: expected a list of strings")
    return list(value)


def _str(value: object, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"{field}: expected a string")
    return value


def merge_env(base: list[str], over: list[str]) -> list[str]:
    """BASE with OVER's entries replacing those of the same name (appended otherwise)."""
    out = list(base)
    index = {e.partition("=")[0]: i for i, e in enumerate(out)}
    for entry in over:
        key = entry.partition("=")[0]
        if not key:
            raise InvalidArgument(f"Env: invalid environment variable {entry!r}")
        if key in index:
            out[index[key]] = entry
        else:
            index[key] = len(out)
            out.append(entry)
    return out


def merge_config(image: dict[str, Any], request: dict[str, Any], cid: str) -> dict[str, Any]:
    """The container's Config (docker's inspect shape) from the image's config and the request."""
    user_entry = _strs(request.get("Entrypoint"), "Entrypoint")
    user_cmd = _strs(request.get("Cmd"), "Cmd") or []
    if user_entry is not None:
        entrypoint = [] if user_entry == [""] else user_entry
        cmd = user_cmd
    else:
        entrypoint = _strs(image.get("Entrypoint"), "image Entrypoint") or []
        cmd = user_cmd or _strs(image.get("Cmd"), "image Cmd") or []
    if not entrypoint and not cmd:
        raise InvalidArgument("no command specified")
    env = merge_env(
        _strs(image.get("Env"), "image Env") or [], _strs(request.get("Env"), "Env") or []
    )
    workdir = _str(request.get("WorkingDir"), "WorkingDir") or _str(image.get("WorkingDir"), "")
    if workdir and not workdir.startswith("/"):
        raise InvalidArgument(
            f"the working directory '{workdir}' is invalid, it needs to be an absolute path"
        )
    labels = dict(image.get("Labels") or {})
    user_labels = request.get("Labels") or {}
    if not isinstance(user_labels, dict) or not all(
        isinstance(v, str) for v in user_labels.values()
    ):
        raise InvalidArgument("Labels: expected an object of strings")
    labels.update(user_labels)
    hostname = _str(request.get("Hostname"), "Hostname") or cid[:12]
    from sampan.engine import lifecycle

    exposed = _exposed(image.get("ExposedPorts"), "image ExposedPorts")
    exposed.update(_exposed(request.get("ExposedPorts"), "ExposedPorts"))
    ports = {"ExposedPorts": exposed} if exposed else {}
    return {
        "Hostname": hostname,
        "Domainname": _str(request.get("Domainname"), "Domainname"),
        "User": _str(request.get("User"), "User") or _str(image.get("User"), ""),
        "AttachStdin": bool(request.get("AttachStdin")),
        "AttachStdout": bool(request.get("AttachStdout")),
        "AttachStderr": bool(request.get("AttachStderr")),
        "Tty": bool(request.get("Tty")),
        "OpenStdin": bool(request.get("OpenStdin")),
        "StdinOnce": bool(request.get("StdinOnce")),
        "Env": env,
        "Cmd": cmd,
        "Image": _str(request.get("Image"), "Image"),
        "Volumes": None,
        "WorkingDir": workdir,
        "Entrypoint": entrypoint or None,
        "OnBuild": None,
        "Labels": labels,
        "StopSignal": _str(request.get("StopSignal"), "StopSignal")
        or _str(image.get("StopSignal"), ""),
        **lifecycle.config_fields(image, request),  # StopTimeout, Healthcheck
        **ports,
    }


def _exposed(value: object, field: str) -> dict[str, Any]:
    """ExposedPorts ({"80/tcp": {}}), each key checked; a bare port is tcp."""
    if not value:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"{field}: expected an object")
    out: dict[str, Any] = {}
    for key in value:
        port, _, proto = str(key).partition("/")
        proto = proto or "tcp"
        if not port.isdigit() or not 0 < int(port) < 65536 or proto not in ("tcp", "udp", "sctp"):
            raise InvalidArgument(f"{field}: invalid port {key!r}")
        out[f"{int(port)}/{proto}"] = {}
    return out


def _empty(value: object) -> bool:
    if isinstance(value, dict):
        return all(_empty(v) for v in value.values())
    return value in (None, "", 0, False, [], {})


def check_host_config(host: object) -> dict[str, Any]:
    """The request's HostConfig, checked: every field set must be one this engine applies."""
    if host is None:
        host = {}
    if not isinstance(host, dict):
        raise InvalidArgument("HostConfig: expected an object")
    from sampan.engine import mounts, network_attach, resources, security

    for key, value in host.items():
        if key == "MemorySwappiness" and value == -1:
            continue  # the CLI's "unset"
        if key in resources.FIELDS or key in security.FIELDS or key in mounts.FIELDS:
            continue
        if key in network_attach.HOST_FIELDS:
            continue
        if key not in _HOST_CONFIG_KEYS and not _empty(value):
            raise Unsupported(f"HostConfig.{key} is not supported yet")
    mode = _str(host.get("NetworkMode"), "HostConfig.NetworkMode")  # a network: plan() checks
    if mode.startswith("container:") and not mode.partition(":")[2]:
        raise InvalidArgument("HostConfig.NetworkMode: container: needs a container")
    from sampan.engine.restart import check_auto_remove, check_policy

    restart = check_policy(host.get("RestartPolicy"))
    check_auto_remove({"AutoRemove": host.get("AutoRemove"), "RestartPolicy": restart})
    log = host.get("LogConfig") or {}
    if not isinstance(log, dict) or log.get("Type", "") not in ("", "json-file"):
        raise Unsupported(f"log driver {log.get('Type')!r} is not supported yet")
    from sampan.engine.logfile import check_log_config

    log_opts = check_log_config(log.get("Config"))
    return {
        "NetworkMode": mode or "default",
        "AutoRemove": bool(host.get("AutoRemove")),
        "ReadonlyRootfs": bool(host.get("ReadonlyRootfs")),
        "RestartPolicy": restart,
        "LogConfig": {"Type": "json-file", "Config": log_opts},
        **resources.check(host),
        **security.check(host),
        **mounts.check_host_fields(host),
        **network_attach.check_host_fields(host),
    }


def network_namespace(mode: str) -> bool:
    """Whether network MODE has a namespace apart from the host's (only "host" has not)."""
    return mode != "host"


# -- the OCI spec -----------------------------------------------------------------------


def _user(spec: str, passwd: str, group: str) -> dict[str, Any]:
    """docker's User ("name", "uid", "name:group", "uid:gid") resolved in the rootfs's files."""
    name, _, grp = spec.partition(":")
    users = [line.split(":") for line in passwd.splitlines() if line.count(":") >= 3]
    groups = [line.split(":") for line in group.splitlines() if line.count(":") >= 3]
    uid = gid = 0
    login = ""
    if name:
        found = [u for u in users if u[0] == name or (name.isdigit() and u[2] == name)]
        if found:
            login, uid, gid = found[0][0], int(found[0][2]), int(found[0][3])
        elif name.isdigit():
            uid = int(name)
        else:
            raise InvalidArgument(f"unable to find user {name}: no matching entries in passwd file")
    if grp:
        match = [g for g in groups if g[0] == grp or (grp.isdigit() and g[2] == grp)]
        if match:
            gid = int(match[0][2])
        elif grp.isdigit():
            gid = int(grp)
        else:
            raise InvalidArgument(f"unable to find group {grp}: no matching entries in group file")
    out: dict[str, Any] = {"uid": uid, "gid": gid}
    if login:
        extra = sorted({int(g[2]) for g in groups if login in g[3].split(",") and g[2].isdigit()})
        if extra:
            out["additionalGids"] = extra
    return out


def oci_spec(
    cid: str,
    config: dict[str, Any],
    host: dict[str, Any],
    *,
    files: dict[str, str],
    passwd: str = "",
    group: str = "",
    cgroup_v2: bool = False,
) -> dict[str, Any]:
    """config.json for container CID; FILES maps /etc/hosts etc. to the engine's files."""
    env = merge_env([f"PATH={DEFAULT_PATH}", f"HOSTNAME={config['Hostname']}"], config["Env"])
    if config.get("Tty"):
        env = merge_env(env, ["TERM=xterm"])
    caps = list(DEFAULT_CAPABILITIES)
    namespaces = [{"type": t} for t in ("mount", "pid", "ipc", "uts")]
    if network_namespace(host["NetworkMode"]):
        namespaces.append({"type": "network"})
    if cgroup_v2:
        namespaces.append({"type": "cgroup"})
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["ro", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={SHM_SIZE}"]},
    ]  # fmt: skip
    for dest in ("/etc/resolv.conf", "/etc/hostname", "/etc/hosts"):
        if dest in files:
            mounts.append({"destination": dest, "type": "bind", "source": files[dest],
                           "options": ["rbind", "rprivate"]})  # fmt: skip
    args = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": bool(config.get("Tty")),
            "user": _user(config.get("User") or "", passwd, group),
            "args": args,
            "env": env,
            "cwd": config.get("WorkingDir") or "/",
            "capabilities": {k: list(caps) for k in ("bounding", "effective", "permitted")},
            "noNewPrivileges": False,
        },
        "root": {"path": "rootfs", "readonly": bool(host.get("ReadonlyRootfs"))},
        "hostname": config["Hostname"],
        "mounts": mounts,
        "linux": {
            "cgroupsPath": f"/sampan/{cid}",
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": namespaces,
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }


def hosts_file(hostname: str, host_mode: bool = False, host_hosts: str = "") -> str:
    """/etc/hosts: the host's own in host mode, else docker's loopback entries."""
    if host_mode and host_hosts:
        return host_hosts
    return (
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
        f"ff02::2\tip6-allrouters\n127.0.0.1\t{hostname}\n"
    )


def resolv_conf(host_text: str, host_mode: bool = False) -> str:
    """The host's resolv.conf; outside host mode without loopback nameservers (unreachable)."""
    if host_mode:
        return host_text
    lines = []
    for line in host_text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            addr = words[1]
            if addr.startswith("127.") or addr == "::1":
                continue
        lines.append(line)
    return "\n".join(lines) + ("\n" if lines else "")
