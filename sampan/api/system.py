"""/_ping, /version, /info, /system/df and /auth.

``/_ping``'s Api-Version header is what the docker CLI and docker-py
negotiate down to.  ``/info`` reports what is true of this machine and this
daemon (CPUs, memory, kernel, the store's driver and counts), never
placeholders a client might act on.
"""

from __future__ import annotations

import os
import platform as _platform
import threading
import time

from sampan.api.errors import BadRequest
from sampan.api.router import API_VERSION, MIN_API_VERSION
from sampan.units import rfc3339

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sampan.api.router import Router
    from sampan.api.server import Request

__all__ = ["add_routes"]


def add_routes(router: Router) -> None:
    router.add("GET,HEAD", "/_ping", ping)
    router.add("GET", "/version", version)
    router.add("GET", "/info", info)
    router.add("GET", "/system/df", disk_usage)
    router.add("POST", "/auth", auth)


def ping(request: Request) -> None:
    headers = {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache"}
    headers["Builder-Version"] = "1"
    request.send(200, b"OK", headers=headers)


def _sampan_version() -> str:
    from sampan import __version__

    return __version__


def _arch() -> str:
    from sampan.oci.image import host_platform

    return host_platform().architecture


def version(request: Request) -> None:
    v = _sampan_version()
    uname = os.uname()
    details = {
        "ApiVersion": API_VERSION,
        "Arch": _arch(),
        "BuildTime": "",
        "Experimental": "false",
        "GitCommit": "",
        "GoVersion": f"python{_platform.python_version()}",
        "KernelVersion": uname.release,
        "MinAPIVersion": MIN_API_VERSION,
        "Os": "linux",
    }
    request.send_json(
        200,
        {
            "Platform": {"Name": f"sampan {v}"},
            "Components": [{"Name": "Engine", "Version": v, "Details": details}],
            "Version": v,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "",
            "GoVersion": details["GoVersion"],
            "Os": "linux",
            "Arch": details["Arch"],
            "KernelVersion": uname.release,
            "BuildTime": "",
        },
    )


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _os_name() -> tuple[str, str]:
    """(PRETTY_NAME, VERSION_ID) of /etc/os-release."""
    fields: dict[str, str] = {}
    try:
        with open("/etc/os-release") as f:
            for line in f:
                key, eq, value = line.strip().partition("=")
                if eq:
                    fields[key] = value.strip().strip('"')
    except OSError:
        pass
    return fields.get("PRETTY_NAME", "Linux"), fields.get("VERSION_ID", "")


def _cgroup_version() -> str:
    return "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def info(request: Request) -> None:
    engine = request.engine
    store = engine.store()
    images = store.list()
    uname = os.uname()
    pretty, version_id = _os_name()
    config = engine.config
    mirrors = list(config.registry_mirrors)
    insecure = ["127.0.0.0/8", *config.insecure_registries]
    index_configs: dict[str, Any] = {
        "docker.io": {"Name": "docker.io", "Mirrors": mirrors, "Secure": True, "Official": True}
    }
    for host in config.insecure_registries:
        if "/" not in host:
            index_configs[host] = {"Name": host, "Mirrors": [], "Secure": False, "Official": False}
    v2 = _cgroup_version() == "2"
    from sampan.engine import resources

    states = [(c.state, c.status) for c in engine.containers.all()]
    paused = sum(1 for _, status in states if status == "paused")
    running = sum(1 for st, status in states if st.get("Running") and status != "paused")
    doc: dict[str, Any] = {
        "ID": engine.id,
        "Containers": len(states),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": len(states) - running - paused,
        "Images": len(images),
        "Driver": store.snapshots.driver,
        "DriverStatus": [["Backing Filesystem", _fs_type(engine.image_root)]],
        "DockerRootDir": engine.root,
        "Plugins": {
            "Volume": ["local"],
            "Network": ["host", "null"],
            "Authorization": None,
            "Log": ["json-file"],
        },
        **resources.host_support(),  # MemoryLimit, SwapLimit, CpuCfsQuota, PidsLimit...
        "IPv4Forwarding": _ip_forwarding(),
        "BridgeNfIptables": False,
        "BridgeNfIp6tables": False,
        "Debug": config.debug,
        "NFd": _open_fds(),
        "NGoroutines": threading.active_count(),
        "SystemTime": rfc3339(time.time_ns(), trim=False),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": "2" if v2 else "1",
        "NEventsListener": 0,
        "KernelVersion": uname.release,
        "OperatingSystem": pretty,
        "OSVersion": version_id,
        "OSType": "linux",
        "Architecture": uname.machine,
        "NCPU": os.cpu_count() or 1,
        "MemTotal": _mem_total(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "AllowNondistributableArtifactsCIDRs": [],
            "AllowNondistributableArtifactsHostnames": [],
            "InsecureRegistryCIDRs": [h for h in insecure if "/" in h],
            "IndexConfigs": index_configs,
            "Mirrors": mirrors,
        },
        "GenericResources": None,
        "HttpProxy": "",
        "HttpsProxy": "",
        "NoProxy": "",
        "Name": uname.nodename,
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": _sampan_version(),
        "Runtimes": {"sampan-runtime": {"path": "sampan-runtime"}},
        "DefaultRuntime": "sampan-runtime",
        "Swarm": {
            "NodeID": "",
            "NodeAddr": "",
            "LocalNodeState": "inactive",
            "ControlAvailable": False,
            "Error": "",
            "RemoteManagers": None,
        },
        "LiveRestoreEnabled": False,
        "Isolation": "",
        "InitBinary": "",
        "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": ["name=seccomp,profile=builtin"] + (["name=cgroupns"] if v2 else []),
        "Warnings": None,
    }
    request.send_json(200, doc)


def _fs_type(path: str) -> str:
    """The filesystem type of PATH, from /proc/self/mounts (the longest mount prefix)."""
    best, kind = "", "unknown"
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mount = parts[1].replace("\\040", " ")
                inside = path == mount or path.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best):
                    best, kind = mount, parts[2]
    except OSError:
        pass
    return kind


def _ip_forwarding() -> bool:
    try:
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


def disk_usage(request: Request) -> None:
    doc = request.engine.images.disk_usage()
    containers = request.engine.containers
    doc["Containers"] = [containers.summary(c) for c in containers.all()]
    doc["Volumes"] = request.engine.volumes.usage()  # with UsageData (Size, RefCount)
    request.send_json(200, doc)


def _server_domain(address: str) -> str:
    """docker's serveraddress to a registry domain: "https://index.docker.io/v1/" -> docker.io."""
    server = address.strip()
    if "://" in server:
        server = server.split("://", 1)[1]
    server = server.split("/", 1)[0]
    if server in ("", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"):
        return "docker.io"
    return server


def auth(request: Request) -> None:
    """POST /auth: the credentials checked against the registry (nothing stored)."""
    from sampan.image.registry.auth import Credentials

    doc = request.json_body()
    if not isinstance(doc, dict):
        raise BadRequest("request body: expected a JSON object")
    for key in ("username", "password", "serveraddress", "identitytoken", "email", "auth"):
        if key in doc and doc[key] is not None and not isinstance(doc[key], str):
            raise BadRequest(f"{key}: expected a string")
    username = doc.get("username") or ""
    password = doc.get("password") or ""
    token = doc.get("identitytoken") or ""
    if not (username and password) and not token:
        raise BadRequest("username and password: both are required")
    server = _server_domain(doc.get("serveraddress") or "")
    request.engine.images.check_login(server, Credentials(username, password, token))
    request.send_json(200, {"Status": "Login Succeeded", "IdentityToken": ""})
