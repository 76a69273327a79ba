"""``sampan pull``, ``push``, ``login`` and ``logout``: docker's names, flags and output.

pull and push are requests to the daemon (POST /images/create, POST
/images/{name}/push) whose JSON progress stream is drawn as docker draws
it; the registry's mirrors and insecure hosts are the daemon's settings
(daemon.json).  Credentials are the client's, as with docker: ``login``
has the daemon check them (POST /auth), then stores them in config.json
under ``--config`` ($DOCKER_CONFIG or ~/.docker); pull and push send them
in X-Registry-Auth; ``logout`` only forgets them.
"""

from __future__ import annotations

import sys

from sampan.api.client import quote
from sampan.cli.args import Flag, parse
from sampan.cli.client import client, daemon_errors, follow_progress, registry_auth
from sampan.cli.main import Context, Usage
from sampan.errors import InvalidArgument, Unsupported

__all__ = ["cmd_login", "cmd_logout", "cmd_pull", "cmd_push"]

PULL_FLAGS = [
    Flag("--quiet,-q", "bool", "suppress verbose output"),
    Flag("--platform", "str", "set platform if server is multi-platform capable"),
    Flag("--all-tags,-a", "bool", "download all tagged images in the repository"),
    Flag("--disable-content-trust", "bool", "skip image verification (always)"),
    Flag("--help,-h", "bool"),
]
PUSH_FLAGS = [
    Flag("--quiet,-q", "bool", "suppress verbose output"),
    Flag("--all-tags,-a", "bool", "push all tags of an image to the repository"),
    Flag("--disable-content-trust", "bool", "skip image signing (always)"),
    Flag("--help,-h", "bool"),
]
LOGIN_FLAGS = [
    Flag("--username,-u", "str", "username"),
    Flag("--password,-p", "str", "password"),
    Flag("--password-stdin", "bool", "take the password from stdin"),
    Flag("--help,-h", "bool"),
]


def _no_tag(name: str) -> bool:
    return ":" not in name.rpartition("/")[2] and "@" not in name


def cmd_pull(ctx: Context, argv: list[str]) -> int:
    opts, args = parse(PULL_FLAGS, argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan pull [OPTIONS] NAME[:TAG|@DIGEST]")
        return 0
    if len(args) != 1:
        raise Usage('"pull" requires exactly 1 argument')
    if opts["all_tags"]:
        raise Unsupported("pull --all-tags is not supported")
    from sampan.image.progress import make_progress
    from sampan.oci.reference import parse_reference

    ref = parse_reference(args[0])
    query = {"fromImage": str(ref.repository()), "tag": ref.digest or ref.tag,
             "platform": opts["platform"]}  # fmt: skip
    quiet = bool(opts["quiet"])

    def pull() -> int:
        headers = registry_auth(ctx.config_dir, ref.domain)
        response = client(ctx).request("POST", "/images/create", query, headers=headers)
        if _no_tag(args[0]) and not quiet:
            print("Using default tag: latest")
        follow_progress(response, make_progress(sys.stdout, quiet=quiet))
        print(str(ref))
        return 0

    return daemon_errors(pull)


def cmd_push(ctx: Context, argv: list[str]) -> int:
    opts, args = parse(PUSH_FLAGS, argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan push [OPTIONS] NAME[:TAG]")
        return 0
    if len(args) != 1:
        raise Usage('"push" requires exactly 1 argument')
    if opts["all_tags"]:
        raise Unsupported("push --all-tags is not supported")
    from sampan.image.progress import make_progress
    from sampan.oci.reference import parse_reference

    ref = parse_reference(args[0])
    if ref.digest is not None:
        raise InvalidArgument(f"push {args[0]}: push a tag, not a digest")
    quiet = bool(opts["quiet"])
    if _no_tag(args[0]) and not quiet:
        print("Using default tag: latest")

    def push() -> int:
        headers = registry_auth(ctx.config_dir, ref.domain)
        path = f"/images/{quote(str(ref.repository()))}/push"
        response = client(ctx).request("POST", path, {"tag": ref.tag}, headers=headers)
        follow_progress(response, make_progress(sys.stdout, quiet=quiet))
        if quiet:
            print(str(ref))
        return 0

    return daemon_errors(push)


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
    opts, args = parse(LOGIN_FLAGS, argv, stop_at_positional=False)
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
    address = "https://index.docker.io/v1/" if server == "docker.io" else server
    body = {"username": username, "password": password, "serveraddress": address}

    def login() -> int:
        from sampan.image.dockerconfig import store_credentials

        client(ctx).json("POST", "/auth", body=body)
        store_credentials(server, username, password, ctx.config_dir)
        print("Login Succeeded")
        return 0

    return daemon_errors(login)


def cmd_logout(ctx: Context, argv: list[str]) -> int:
    opts, args = parse([Flag("--help,-h", "bool")], argv, stop_at_positional=False)
    if opts["help"]:
        print("Usage:  sampan logout [SERVER]")
        return 0
    if len(args) > 1:
        raise Usage('"logout" requires at most 1 argument')
    from sampan.image.dockerconfig import erase_credentials

    server = _server(args)
    if erase_credentials(server, ctx.config_dir):
        print(f"Removing login credentials for {server}")
    else:
        print(f"Not logged in to {server}")
    return 0
