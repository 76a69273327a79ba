"""``sampan pull``, ``push``, ``login`` and ``logout``: docker's names, flags and output.

Registry options come from flags (``--registry-mirror``, ``--insecure-registry``,
repeatable) and from ROOT/daemon.json's "registry-mirrors" and
"insecure-registries" (docker's daemon.json keys); credentials from
``--config`` (docker's config dir: $DOCKER_CONFIG or ~/.docker).
"""

from __future__ import annotations

import os
import sys

from sampan.cli.args import Flag, parse
from sampan.cli.main import Context, Usage
from sampan.errors import InvalidArgument, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

REGISTRY_FLAGS = [
    Flag("--registry-mirror", "list", "a Docker Hub mirror to try first (repeatable)"),
    Flag("--insecure-registry", "list", "a registry reached over plain HTTP (repeatable)"),
]


def _registry_options(ctx: Context, opts: dict[str, Any]) -> tuple[list[str], list[str]]:
    mirrors = list(opts.get("registry_mirror") or [])
    insecure = list(opts.get("insecure_registry") or [])
    path = os.path.join(ctx.root, "daemon.json")
    if os.path.exists(path):
        from sampan import _json

        with open(path, "rb") as f:
            try:
                doc = _json.loads(f.read())
            except ValueError as exc:
                raise InvalidArgument(f"{path}: not valid JSON: {exc}") from None
        if isinstance(doc, dict):
            mirrors += [m for m in doc.get("registry-mirrors", []) if isinstance(m, str)]
            insecure += [h for h in doc.get("insecure-registries", []) if isinstance(h, str)]
    return mirrors, insecure


def cmd_pull(ctx: Context, argv: list[str]) -> int:
    flags = [
        Flag("--quiet,-q", "bool", "suppress verbose output"),
        Flag("--platform", "str", "set platform if server is multi-platform capable"),
        Flag("--all-tags,-a", "bool", "download all tagged images in the repository"),
        Flag("--disable-content-trust", "bool", "skip image verification (always)"),
        *REGISTRY_FLAGS,
        Flag("--help,-h", "bool"),
    ]
    opts, args = parse(flags, argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan pull [OPTIONS] NAME[:TAG|@DIGEST]")
        return 0
    if len(args) != 1:
        raise Usage('"pull" requires exactly 1 argument')
    if opts["all_tags"]:
        raise Unsupported("pull --all-tags is not supported")
    from sampan.image.registry.progress import make_progress
    from sampan.image.registry.pull import pull
    from sampan.oci.image import parse_platform
    from sampan.oci.reference import parse_reference

    ref = parse_reference(args[0])
    platform = parse_platform(opts["platform"]) if opts["platform"] else None
    progress = make_progress(sys.stdout, quiet=bool(opts["quiet"]))
    if ":" not in args[0].rpartition("/")[2] and "@" not in args[0] and not opts["quiet"]:
        print("Using default tag: latest")
    mirrors, insecure = _registry_options(ctx, opts)
    pull(ctx.store, ref, platform=platform, progress=progress, mirrors=mirrors,
         insecure=insecure, config_dir=ctx.config_dir)  # fmt: skip
    print(str(ref))
    return 0


def cmd_push(ctx: Context, argv: list[str]) -> int:
    flags = [
        Flag("--quiet,-q", "bool", "suppress verbose output"),
        Flag("--all-tags,-a", "bool", "push all tags of an image to the repository"),
        Flag("--disable-content-trust", "bool", "skip image signing (always)"),
        *REGISTRY_FLAGS,
        Flag("--help,-h", "bool"),
    ]
    opts, args = parse(flags, argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan push [OPTIONS] NAME[:TAG]")
        return 0
    if len(args) != 1:
        raise Usage('"push" requires exactly 1 argument')
    if opts["all_tags"]:
        raise Unsupported("push --all-tags is not supported")
    from sampan.image.registry.progress import make_progress
    from sampan.image.registry.push import push
    from sampan.oci.reference import parse_reference

    ref = parse_reference(args[0])
    progress = make_progress(sys.stdout, quiet=bool(opts["quiet"]))
    if ":" not in args[0].rpartition("/")[2] and not opts["quiet"]:
        print("Using default tag: latest")
    _mirrors, insecure = _registry_options(ctx, opts)
    push(ctx.store, ref, progress=progress, insecure=insecure, config_dir=ctx.config_dir)
    if opts["quiet"]:
        print(str(ref))
    return 0


def _server(args: list[str]) -> str:
    """docker's SERVER argument: a host[:port] (a URL's scheme and path dropped)."""
    if not args:
        return "docker.io"
    server = args[0]
    if "://" in server:
        server = server.split("://", 1)[1]
    server = server.split("/", 1)[0]
    return "docker.io" if server in ("index.docker.io", "registry-1.docker.io") else server


def cmd_login(ctx: Context, argv: list[str]) -> int:
    flags = [
        Flag("--username,-u", "str", "username"),
        Flag("--password,-p", "str", "password"),
        Flag("--password-stdin", "bool", "take the password from stdin"),
        *REGISTRY_FLAGS[1:],
        Flag("--help,-h", "bool"),
    ]
    opts, args = parse(flags, argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan login [OPTIONS] [SERVER]")
        return 0
    if len(args) > 1:
        raise Usage('"login" requires at most 1 argument')
    server = _server(args)
    username, password = opts["username"], opts["password"]
    if opts["password_stdin"]:
        if password:
            raise Usage("--password and --password-stdin are mutually exclusive")
        if not username:
            raise Usage("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    elif password:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.",
              file=sys.stderr)  # fmt: skip
    if not username:
        sys.stdout.write("Username: ")
        sys.stdout.flush()
        username = sys.stdin.readline().strip()
    if not password:
        import getpass

        password = getpass.getpass("Password: ")
    if not username or not password:
        raise InvalidArgument("login: username and password are required")
    from sampan.image.registry import login

    _mirrors, insecure = _registry_options(ctx, opts)
    login(server, username, password, insecure_registries=insecure, config_dir=ctx.config_dir)
    print("Login Succeeded")
    return 0


def cmd_logout(ctx: Context, argv: list[str]) -> int:
    opts, args = parse([Flag("--help,-h", "bool")], argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan logout [SERVER]")
        return 0
    if len(args) > 1:
        raise Usage('"logout" requires at most 1 argument')
    from sampan.image.registry import erase_credentials

    server = _server(args)
    if erase_credentials(server, ctx.config_dir):
        print(f"Removing login credentials for {server}")
    else:
        print(f"Not logged in to {server}")
    return 0
