"""docker's security fields of a HostConfig -> the OCI process and linux sections.

    fields = check(host_config)      # create: validated (a bad one leaves no container)
    apply_to_spec(doc, fields)       # start: capabilities, seccomp, devices, init...

  - CapAdd/CapDrop: names with or without ``CAP_``, any case, or ``ALL``; the
    default set is docker's; an added capability wins over a dropped one.
  - Privileged: every capability the *daemon* holds in its bounding set (these
    machines lack CAP_SYS_RESOURCE there, so asking for "all known" would fail,
    as docker's does), every host device and an allow-all device rule, no
    masked or read-only paths, /sys and the cgroup tree read-write, no seccomp.
  - SecurityOpt: ``no-new-privileges[=|:true|false]``, ``seccomp=unconfined``,
    ``seccomp=builtin``, ``seccomp=<JSON profile>`` (the docker CLI reads the
    file and sends its text), ``systempaths=unconfined``; ``label=disable`` and
    ``apparmor=unconfined`` ask for what sampan does anyway and are accepted;
    any other ``label``/``apparmor`` option is refused (501): sampan applies
    neither, and ignoring a security setting is not an option.
  - Devices: ``{PathOnHost, PathInContainer, CgroupPermissions}``; a directory
    brings every device under it, as dockerd does.
  - Init: the host's static tini bind-mounted read-only at /sbin/docker-init,
    run as pid 1 before the command (``/sbin/docker-init -- cmd...``).

Unless seccomp is unconfined, the container gets sampan's default profile
(seccomp_profile.py), which depends on the final capability set.
"""

from __future__ import annotations

import os
import stat

from sampan import _json
from sampan.errors import InvalidArgument, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "FIELDS",
    "INIT_PATH",
    "apply_to_spec",
    "capabilities",
    "check",
    "daemon_capabilities",
    "host_devices",
    "init_binary",
]

INIT_PATH = "/sbin/docker-init"
INIT_CANDIDATES = ("/usr/bin/docker-init", "/usr/libexec/docker/docker-init",
                   "/usr/bin/tini-static", "/usr/local/bin/tini-static")  # fmt: skip
# /dev entries a privileged container does not get from the host (runc's list).
_SKIP_DIRS = frozenset(("pts", "shm", "fuse", "mqueue", ".lxc", ".lxd-mounts", ".udev"))
_SKIP_NODES = frozenset(("console",))

# The HostConfig fields this module owns, with docker's inspect value when unset.
FIELDS: dict[str, Any] = {
    "CapAdd": None,
    "CapDrop": None,
    "Privileged": False,
    "SecurityOpt": None,
    "Devices": [],
    "Init": None,
}


def _strings(host: dict[str, Any], key: str) -> list[str] | None:
    value = host.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"HostConfig.{key}: expected a list of strings")
    return list(value)


def _cap_name(name: str) -> str:
    """docker's normalisation: "sys_admin", "CAP_SYS_ADMIN", "Sys_Admin" -> CAP_SYS_ADMIN."""
    from sampan.linux.caps import CAPABILITIES

    upper = name.strip().upper()
    if upper == "ALL":
        return "ALL"
    full = upper if upper.startswith("CAP_") else "CAP_" + upper
    if full not in CAPABILITIES:
        raise InvalidArgument(f'unknown capability: "{full}"')
    return full


_held: list[str] = []


def daemon_capabilities() -> list[str]:
    """The capabilities in this daemon's bounding set, by name (the most a container gets);
    read once: a process's bounding set only ever shrinks, and the daemon never drops any."""
    if not _held:
        from sampan.linux.caps import bounding_set, cap_names

        _held.extend(cap_names(bounding_set()))
    return list(_held)


def capabilities(fields: dict[str, Any]) -> list[str]:
    """The container's capability set: docker's defaults, CapDrop, then CapAdd."""
    from sampan.engine.spec import DEFAULT_CAPABILITIES

    held = daemon_capabilities()
    if fields.get("Privileged"):
        return held
    adds = [_cap_name(n) for n in fields.get("CapAdd") or []]
    drops = [_cap_name(n) for n in fields.get("CapDrop") or []]
    if "ALL" in adds:
        return held
    caps = [] if "ALL" in drops else [c for c in DEFAULT_CAPABILITIES if c not in drops]
    for cap in adds:
        if cap not in caps:
            caps.append(cap)
    return caps


def _check_caps(fields: dict[str, Any]) -> None:
    held = set(daemon_capabilities()) if fields["CapAdd"] else set()
    for key in ("CapAdd", "CapDrop"):
        for name in fields[key] or []:
            cap = _cap_name(name)
            if key == "CapAdd" and cap != "ALL" and cap not in held:
                raise InvalidArgument(
                    f"capability {cap}: not in the daemon's bounding set, so no container "
                    "on this host can hold it"
                )


def _security_opts(opts: list[str] | None) -> dict[str, Any]:
    """SecurityOpt -> {"no_new_privileges": bool, "seccomp": None|"unconfined"|profile,
    "systempaths": bool}; refused options raise."""
    out: dict[str, Any] = {"no_new_privileges": False, "seccomp": None, "unconfined_paths": False}
    for opt in opts or []:
        key, eq, value = opt.partition("=")
        if not eq and ":" in opt:
            key, _, value = opt.partition(":")  # the legacy "key:value" form
        if key == "no-new-privileges":
            if value not in ("", "true", "false"):
                raise InvalidArgument(
                    f"invalid --security-opt 2: {opt!r}: no-new-privileges takes true or false"
                )
            out["no_new_privileges"] = value != "false"
        elif key == "seccomp":
            out["seccomp"] = _seccomp_option(value)
        elif key == "systempaths":
            if value != "unconfined":
                raise InvalidArgument(
                    f"invalid --security-opt: {opt!r}: want systempaths=unconfined"
                )
            out["unconfined_paths"] = True
        elif key == "label":
            if value != "disable":
                raise Unsupported(
                    f"--security-opt {opt}: SELinux labels are not supported by sampan"
                )
        elif key == "apparmor":
            if value != "unconfined":
                raise Unsupported(
                    f"--security-opt {opt}: AppArmor profiles are not supported by sampan"
                )
        else:
            raise InvalidArgument(f"invalid --security-opt 1: {opt!r}")  # (dockerd's words)
    return out


def _seccomp_option(value: str) -> Any:
    if value in ("unconfined", "builtin", ""):
        if not value:
            raise InvalidArgument("--security-opt seccomp: a profile or 'unconfined' is needed")
        return None if value == "builtin" else "unconfined"
    try:
        profile = _json.loads(value)
    except ValueError as exc:
        raise InvalidArgument(
            f"--security-opt seccomp: the profile is not valid JSON ({exc}); give the path "
            "of a JSON file (the docker CLI reads it), or 'unconfined'"
        ) from None
    from sampan.linux.seccomp import validate_seccomp

    validate_seccomp(profile, "seccomp profile")
    return profile


def _devices(host: dict[str, Any]) -> list[dict[str, str]]:
    value = host.get("Devices")
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidArgument("HostConfig.Devices: expected a list")
    out = []
    for entry in value:
        if not isinstance(entry, dict):
            raise InvalidArgument("HostConfig.Devices: expected objects {PathOnHost, ...}")
        src = entry.get("PathOnHost")
        dest = entry.get("PathInContainer") or src
        perms = entry.get("CgroupPermissions") or "rwm"
        if not isinstance(src, str) or not src or not isinstance(dest, str):
            raise InvalidArgument("HostConfig.Devices: PathOnHost is required")
        if not isinstance(perms, str) or not set(perms) <= set("rwm"):
            raise InvalidArgument(f"invalid device mode: {perms}")
        if not dest.startswith("/"):
            raise InvalidArgument(f"{dest} is not an absolute path")
        try:
            st = os.stat(src)
        except OSError as exc:
            raise InvalidArgument(
                f'error gathering device information while adding custom device "{src}": '
                f"{os.strerror(exc.errno or 0).lower()}"
            ) from None
        if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            raise InvalidArgument(
                f'error gathering device information while adding custom device "{src}": '
                "not a device node"
            )
        out.append({"PathOnHost": src, "PathInContainer": dest, "CgroupPermissions": perms})
    return out


def init_binary() -> str | None:
    """The host's static tini (docker-init), or None."""
    for path in INIT_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    return None


def check(host: dict[str, Any]) -> dict[str, Any]:
    """The security fields of a create's HostConfig, validated, as inspect shows them."""
    fields: dict[str, Any] = {
        "CapAdd": _strings(host, "CapAdd"),
        "CapDrop": _strings(host, "CapDrop"),
        "SecurityOpt": _strings(host, "SecurityOpt"),
    }
    for key in ("Privileged", "Init"):
        value = host.get(key)
        if value is not None and not isinstance(value, bool):
            raise InvalidArgument(f"HostConfig.{key}: expected a boolean")
    fields["Privileged"] = bool(host.get("Privileged"))
    fields["Init"] = host.get("Init")
    _check_caps(fields)
    _security_opts(fields["SecurityOpt"])
    fields["Devices"] = _devices(host)
    if fields["Init"] and init_binary() is None:
        raise InvalidArgument(
            "--init: no docker-init or tini-static on this host (Debian's tini package has it)"
        )
    return fields


# -- the OCI spec ------------------------------------------------------------------------


def _device(path_on_host: str, path_in_container: str) -> dict[str, Any] | None:
    try:
        st = os.stat(path_on_host)
    except OSError:
        return None
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        return None
    return {"path": path_in_container, "type": kind, "major": os.major(st.st_rdev),
            "minor": os.minor(st.st_rdev), "fileMode": stat.S_IMODE(st.st_mode),
            "uid": st.st_uid, "gid": st.st_gid}  # fmt: skip


def _walk(top: str) -> list[str]:
    """Device nodes under TOP (not following symlinks), iteratively."""
    found, todo = [], [top]
    while todo:
        directory = todo.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_symlink():
                    continue
                if entry.is_dir():
                    if not (directory == "/dev" and entry.name in _SKIP_DIRS):
                        todo.append(entry.path)
                    continue
            except OSError:
                continue
            if entry.name not in _SKIP_NODES:
                found.append(entry.path)
    return sorted(found)


def host_devices() -> list[dict[str, Any]]:
    """Every device node of the host's /dev, as OCI linux.devices (privileged containers)."""
    out = []
    for path in _walk("/dev"):
        dev = _device(path, path)
        if dev is not None:
            out.append(dev)
    return out


def _user_devices(devices: list[dict[str, str]]) -> tuple[list[Any], list[Any]]:
    """linux.devices and resources.devices rules of docker's Devices."""
    nodes, rules = [], []
    for d in devices:
        src, dest, perms = d["PathOnHost"], d["PathInContainer"], d["CgroupPermissions"]
        pairs = [(src, dest)]
        if os.path.isdir(src):
            prefix = src.rstrip("/") + "/"
            pairs = [(p, dest.rstrip("/") + "/" + p[len(prefix) :]) for p in _walk(src)]
        for host_path, path in pairs:
            node = _device(host_path, path)
            if node is None:
                continue
            nodes.append(node)
            rules.append({"allow": True, "type": node["type"], "major": node["major"],
                          "minor": node["minor"], "access": perms})  # fmt: skip
    return nodes, rules


def apply_to_spec(doc: dict[str, Any], host: dict[str, Any], machine: str | None = None) -> None:
    """Put HOST's security fields (as ``check`` made them) into config.json DOC."""
    fields = {key: host.get(key, default) for key, default in FIELDS.items()}
    opts = _security_opts(fields["SecurityOpt"])
    process = doc["process"]
    linux = doc.setdefault("linux", {})
    resources = linux.setdefault("resources", {})
    caps = capabilities(fields)
    process["capabilities"] = {k: list(caps) for k in ("bounding", "effective", "permitted")}
    process["noNewPrivileges"] = bool(opts["no_new_privileges"])
    privileged = bool(fields["Privileged"])
    if privileged or opts["unconfined_paths"]:
        linux["maskedPaths"] = []
        linux["readonlyPaths"] = []
    if privileged:
        for mount in doc.get("mounts", []):
            if mount.get("destination") in ("/sys", "/sys/fs/cgroup"):
                mount["options"] = [o for o in mount.get("options", []) if o != "ro"]
        linux["devices"] = host_devices()
        resources["devices"] = [{"allow": True, "access": "rwm"}]
    if fields["Devices"]:
        nodes, rules = _user_devices(fields["Devices"])
        taken = {d["path"] for d in linux.get("devices", [])}
        linux.setdefault("devices", []).extend(n for n in nodes if n["path"] not in taken)
        if not privileged:
            resources.setdefault("devices", []).extend(rules)
    seccomp = opts["seccomp"]
    if privileged or seccomp == "unconfined":
        linux.pop("seccomp", None)
    elif seccomp is None:
        from sampan.engine.seccomp_profile import default_seccomp

        linux["seccomp"] = default_seccomp(caps, machine)
    else:
        from sampan.linux.seccomp import from_profile

        linux["seccomp"] = from_profile(seccomp, bounding=caps)
    if fields["Init"]:
        binary = init_binary()
        if binary is None:
            raise InvalidArgument("--init: no docker-init or tini-static on this host")
        mount = {"destination": INIT_PATH, "type": "bind", "source": binary,
                 "options": ["rbind", "ro"]}  # fmt: skip
        doc.setdefault("mounts", []).append(mount)
        process["args"] = [INIT_PATH, "--", *process["args"]]
