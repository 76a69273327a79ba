"""``sampan info``, ``version`` and ``system df``: the daemon's /info, /version and
/system/df printed in docker's layout.

``info`` and ``version`` print the client's part first, then the server's,
as docker does: with the daemon down the client's part still prints, and
the command fails with the daemon's absence on one line.  ``-f/--format``
runs a Go template over the same documents docker's templates see
(``{{.NCPU}}``, ``{{.Server.Version}}``).
"""

from __future__ import annotations

import os
import sys

from sampan.api.client import API_PREFIX, ApiError, DaemonUnreachable
from sampan.cli.args import Flag, parse
from sampan.cli.client import client, daemon_errors, err
from sampan.cli.main import Context, Usage

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "bytes_size",
    "cmd_info",
    "cmd_system_df",
    "cmd_version",
    "df_rows",
    "info_text",
    "version_text",
]

FORMAT_FLAGS = [
    Flag("--format,-f", "str", "format output using a custom template"),
    Flag("--help,-h", "bool", "show help"),
]
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def bytes_size(size: float) -> str:
    """go-units' BytesSize: binary units, four significant digits ("23.54GiB")."""
    value, i = float(size), 0
    while value >= 1024.0 and i < len(_BINARY_UNITS) - 1:
        value /= 1024.0
        i += 1
    return format(value, ".4g") + _BINARY_UNITS[i]


def _template(spec: str, doc: Any) -> str:
    from sampan.cli.format import render

    return render(spec, [doc], mode="inspect")


def _client_version() -> dict[str, Any]:
    from sampan import __version__

    python = "{}.{}.{}".format(*sys.version_info[:3])  # not platform: it imports re

    machine = os.uname().machine
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    return {
        "Platform": {"Name": ""},
        "Version": __version__,
        "ApiVersion": API_PREFIX.removeprefix("/v"),
        "DefaultAPIVersion": API_PREFIX.removeprefix("/v"),
        "GitCommit": "",
        "GoVersion": f"python{python}",
        "Os": "linux",
        "Arch": arch,
        "BuildTime": "",
        "Context": "default",
    }


# -- info ----------------------------------------------------------------------------


def _security_options(options: list[str]) -> list[str]:
    """docker's display of "name=seccomp,profile=builtin": the name, then its fields."""
    lines: list[str] = []
    for option in options:
        fields = dict(f.partition("=")[::2] for f in option.split(","))
        lines.append(f"  {fields.pop('name', option)}")
        lines += [f"   {k.capitalize()}: {v}" for k, v in fields.items()]
    return lines


def info_text(doc: dict[str, Any], debug: bool = False) -> str:
    """docker's ``info`` text for the Server part (the lines that apply to sampan)."""
    lines = [
        "Server:",
        f" Containers: {doc.get('Containers', 0)}",
        f"  Running: {doc.get('ContainersRunning', 0)}",
        f"  Paused: {doc.get('ContainersPaused', 0)}",
        f"  Stopped: {doc.get('ContainersStopped', 0)}",
        f" Images: {doc.get('Images', 0)}",
        f" Server Version: {doc.get('ServerVersion', '')}",
        f" Storage Driver: {doc.get('Driver', '')}",
    ]
    lines += [f"  {k}: {v}" for k, v in doc.get("DriverStatus") or []]
    lines += [
        f" Logging Driver: {doc.get('LoggingDriver', '')}",
        f" Cgroup Driver: {doc.get('CgroupDriver', '')}",
        f" Cgroup Version: {doc.get('CgroupVersion', '')}",
    ]
    plugins = doc.get("Plugins") or {}
    lines.append(" Plugins:")
    for kind in ("Volume", "Network", "Authorization", "Log"):
        if plugins.get(kind):
            lines.append(f"  {kind}: {' '.join(plugins[kind])}")
    runtimes = doc.get("Runtimes") or {}
    if runtimes:
        lines.append(f" Runtimes: {' '.join(sorted(runtimes))}")
        lines.append(f" Default Runtime: {doc.get('DefaultRuntime', '')}")
    if doc.get("SecurityOptions"):
        lines.append(" Security Options:")
        lines += _security_options(doc["SecurityOptions"])
    lines += [
        f" Kernel Version: {doc.get('KernelVersion', '')}",
        f" Operating System: {doc.get('OperatingSystem', '')}",
        f" OSType: {doc.get('OSType', '')}",
        f" Architecture: {doc.get('Architecture', '')}",
        f" CPUs: {doc.get('NCPU', 0)}",
        f" Total Memory: {bytes_size(int(doc.get('MemTotal') or 0))}",
        f" Name: {doc.get('Name', '')}",
        f" ID: {doc.get('ID', '')}",
        f" Docker Root Dir: {doc.get('DockerRootDir', '')}",
        f" Debug Mode: {str(bool(doc.get('Debug'))).lower()}",
    ]
    if doc.get("Debug"):
        lines += [f"  File Descriptors: {doc.get('NFd', 0)}",
                  f"  Goroutines: {doc.get('NGoroutines', 0)}",
                  f"  System Time: {doc.get('SystemTime', '')}",
                  f"  EventsListeners: {doc.get('NEventsListener', 0)}"]  # fmt: skip
    lines.append(f" Experimental: {str(bool(doc.get('ExperimentalBuild'))).lower()}")
    registry = doc.get("RegistryConfig") or {}
    insecure = list(registry.get("InsecureRegistryCIDRs") or [])
    for name, index in (registry.get("IndexConfigs") or {}).items():
        if isinstance(index, dict) and not index.get("Secure", True):
            insecure.append(name)
    if insecure:
        lines.append(" Insecure Registries:")
        lines += [f"  {name}" for name in insecure]
    mirrors = registry.get("Mirrors") or []
    if mirrors:
        lines.append(" Registry Mirrors:")
        lines += [f"  {mirror}" for mirror in mirrors]
    lines.append(f" Live Restore Enabled: {str(bool(doc.get('LiveRestoreEnabled'))).lower()}")
    return "\n".join(lines) + "\n"


def _client_info(debug: bool) -> str:
    from sampan import __version__

    return (f"Client:\n Version:    {__version__}\n Context:    default\n"
            f" Debug Mode: {str(debug).lower()}\n")  # fmt: skip


def cmd_info(ctx: Context, argv: list[str]) -> int:
    opts, args = parse(FORMAT_FLAGS, argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan info [OPTIONS]\n\nDisplay system-wide information")
        return 0
    if args:
        raise Usage('"info" accepts no arguments')
    if opts["format"]:

        def formatted() -> int:
            sys.stdout.write(_template(opts["format"], client(ctx).json("GET", "/info")))
            return 0

        return daemon_errors(formatted)
    sys.stdout.write(_client_info(ctx.debug) + "\n")
    sys.stdout.flush()
    try:
        doc = client(ctx).json("GET", "/info")
    except (DaemonUnreachable, ApiError) as exc:
        message = exc.message if isinstance(exc, ApiError) else str(exc)
        sys.stdout.write("Server:\n")
        sys.stdout.flush()
        err(f"ERROR: {message}\nerrors pretty printing info")
        return 1
    sys.stdout.write(info_text(doc))
    for warning in doc.get("Warnings") or []:
        err(warning)
    return 0


# -- version -------------------------------------------------------------------------


def version_text(client_doc: dict[str, Any], server: dict[str, Any] | None) -> str:
    """docker's ``version`` text: the client's part, then the server's (when it answered)."""
    lines = [
        "Client:",
        f" Version:           {client_doc['Version']}",
        f" API version:       {client_doc['ApiVersion']}",
        f" Python version:    {client_doc['GoVersion'].removeprefix('python')}",
        f" OS/Arch:           {client_doc['Os']}/{client_doc['Arch']}",
        f" Context:           {client_doc['Context']}",
    ]
    if server is not None:
        platform = (server.get("Platform") or {}).get("Name", "")
        lines += ["", f"Server: {platform}".rstrip()]
        for component in server.get("Components") or []:
            details = component.get("Details") or {}
            lines.append(f" {component.get('Name', '')}:")
            lines.append(f"  Version:          {component.get('Version', '')}")
            if component.get("Name") == "Engine":
                api = details.get("ApiVersion", "")
                lines.append(
                    f"  API version:      {api} (minimum version {details.get('MinAPIVersion')})"
                )
                python = str(details.get("GoVersion", "")).removeprefix("python")
                lines.append(f"  Python version:   {python}")
                lines.append(f"  OS/Arch:          {details.get('Os', '')}/{details.get('Arch')}")
                lines.append(f"  Experimental:     {details.get('Experimental', 'false')}")
    return "\n".join(lines) + "\n"


def cmd_version(ctx: Context, argv: list[str]) -> int:
    opts, args = parse(FORMAT_FLAGS, argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan version [OPTIONS]\n\nShow the sampan version information")
        return 0
    if args:
        raise Usage('"version" accepts no arguments')
    client_doc = _client_version()
    server: dict[str, Any] | None = None
    problem = ""
    try:
        server = client(ctx).json("GET", "/version")
    except DaemonUnreachable as exc:
        problem = str(exc)
    except ApiError as exc:
        problem = f"Error response from daemon: {exc.message}"
    if opts["format"]:
        sys.stdout.write(_template(opts["format"], {"Client": client_doc, "Server": server}))
    else:
        sys.stdout.write(version_text(client_doc, server))
    if problem:
        err(problem)
        return 1
    return 0


# -- system df -----------------------------------------------------------------------


def _size(size: float) -> str:
    from sampan.units import human_size

    return human_size(size, 4)  # go-units' HumanSize, as docker's df prints it


def _reclaimable(reclaimable: int, total: int) -> str:
    return f"{_size(reclaimable)} ({100 * reclaimable // total}%)" if total else _size(reclaimable)


def df_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """docker's ``system df`` rows for GET /system/df."""
    images = doc.get("Images") or []
    total = int(doc.get("LayersSize") or 0)
    used = 0
    for image in images:
        if image.get("Containers", 0) > 0 and image.get("SharedSize", -1) >= 0:
            used += int(image.get("Size") or 0) - int(image["SharedSize"])
    containers = doc.get("Containers") or []
    c_size = sum(int(c.get("SizeRw") or 0) for c in containers)
    c_free = sum(int(c.get("SizeRw") or 0) for c in containers if c.get("State") != "running")
    volumes = doc.get("Volumes") or []
    usage = [v.get("UsageData") or {} for v in volumes]
    v_size = sum(max(int(u.get("Size") or 0), 0) for u in usage)
    v_free = sum(max(int(u.get("Size") or 0), 0) for u in usage if not u.get("RefCount"))
    cache = doc.get("BuildCache") or []
    return [
        {"Type": "Images", "TotalCount": len(images),
         "Active": sum(1 for i in images if i.get("Containers", 0) > 0),
         "Size": _size(total), "Reclaimable": _reclaimable(max(total - used, 0), total)},
        {"Type": "Containers", "TotalCount": len(containers),
         "Active": sum(1 for c in containers if c.get("State") == "running"),
         "Size": _size(c_size), "Reclaimable": _reclaimable(c_free, c_size)},
        {"Type": "Local Volumes", "TotalCount": len(volumes),
         "Active": sum(1 for u in usage if u.get("RefCount")),
         "Size": _size(v_size), "Reclaimable": _reclaimable(v_free, v_size)},
        {"Type": "Build Cache", "TotalCount": len(cache), "Active": 0, "Size": "0B",
         "Reclaimable": "0B"},
    ]  # fmt: skip


DF_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
              "Reclaimable": "RECLAIMABLE"}  # fmt: skip


def cmd_system_df(ctx: Context, argv: list[str]) -> int:
    flags = [
        Flag("--verbose,-v", "bool", "show detailed information on space usage"),
        Flag("--format", "str", "format output using a custom template"),
        Flag("--help,-h", "bool"),
    ]
    opts, args = parse(flags, argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan system df [OPTIONS]")
        return 0
    if args:
        raise Usage('"system df" accepts no arguments')
    if opts["verbose"]:
        from sampan.errors import Unsupported

        raise Unsupported("system df -v is not supported yet")

    def df() -> int:
        from sampan.cli.format import render

        rows = df_rows(client(ctx).json("GET", "/system/df") or {})
        table = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
        sys.stdout.write(render(opts["format"] or table, rows, DF_HEADERS, default_table=table))
        return 0

    return daemon_errors(df)
