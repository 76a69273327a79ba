"""The steps that need a container: RUN, COPY/ADD and a WORKDIR that makes its directory.

Each is a container of the step's parent image made through the engine
(``ContainerService.create``: its snapshot, its bundle, its network), then:

    RUN       started with the step's command (the Entrypoint emptied, the ARGs in
              effect added to Env, --network and --mount applied), its output
              followed in its json-file log and sent down the build stream as it
              comes, waited for; a non-zero exit fails the build with the code and
              the last lines of output
    COPY/ADD  never started: its filesystem is mounted in a namespace of its own
              (container_fs.private_root) and the sources written into it by
              build/copy.py, with paths resolved inside that root
    WORKDIR   never started either: the directory made (0755, root) when missing

and its writable layer becomes the step's image (``image_steps``:
uncompressed, as the classic builder keeps layers until a push).  The
container is removed after a successful step (``--rm``, the default); a
failed RUN's container stays unless ``--force-rm``, as docker leaves it.
"""

from __future__ import annotations

import contextlib
import os
import time

from sampan.build.steps import PROXY_ARGS
from sampan.errors import InvalidArgument, NotFound, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from sampan.build.steps import Step
    from sampan.engine.containers import Container
    from sampan.image.store import ImageRecord

__all__ = ["copy", "run", "workdir"]

_TAIL_LINES = 10


def _create(step: Step, request: dict[str, Any]) -> Container:
    state = step.state
    image = state.image if state.image is not None else step.build.scratch_image()
    service = step.build.engine.containers
    config = state.config
    body = {
        "Image": image.id,
        "Entrypoint": [""],
        "User": config.get("User") or "",
        "WorkingDir": config.get("WorkingDir") or "",
        "Healthcheck": {"Test": ["NONE"]},
        "Labels": {},
        **request,
    }
    body.setdefault("Cmd", ["#(nop)"])
    host = {"NetworkMode": "none", "LogConfig": {"Type": "json-file", "Config": {}}}
    host.update(request.get("HostConfig") or {})
    body["HostConfig"] = host
    return service.get(service.create(body))


def _remove(step: Step, c: Container) -> None:
    with contextlib.suppress(NotFound):
        step.build.engine.containers.remove(c.id, force=True)


def _commit(step: Step, c: Container, entry: dict[str, Any], layer: bool = True) -> ImageRecord:
    from sampan.engine.image_steps import child_image, container_layer

    build = step.build
    state = step.state
    made = (
        container_layer(build.engine.containers, c, build.store, compress=False) if layer else None
    )
    return child_image(build.store, state.image, state.config, entry, made)


# -- RUN ---------------------------------------------------------------------------------


def _command(step: Step) -> list[str]:
    inst = step.inst
    if inst.json:
        return list(inst.args)
    text = inst.args[0] if inst.args else ""
    if inst.heredocs:
        only = text.strip()
        docs = inst.heredocs
        if len(docs) == 1 and only.lstrip("<-").strip("\"'") == docs[0].name and "<<" in only:
            return [*step.state.shell, docs[0].content]  # RUN <<EOF: the heredoc is the script
        script = text
        for doc in docs:
            script += "\n" + doc.content
            if not script.endswith("\n"):
                script += "\n"
            script += doc.name
        return [*step.state.shell, script]
    return [*step.state.shell, text]


def _network(step: Step) -> str:
    wanted = step.flags.get("network") or step.build.options.network or "default"
    if wanted not in ("default", "none", "host", "bridge"):
        raise step.error(f"RUN --network={wanted}: expected default, none or host")
    return wanted


def _mounts(step: Step) -> tuple[list[dict[str, Any]], list[object]]:
    """RUN --mount: the container's Mounts, and what of them goes into the cache key."""
    out: list[dict[str, Any]] = []
    keys: list[object] = []
    for name, value in step.flags.items():
        if not name.startswith("mount#"):
            continue
        opts: dict[str, str] = {}
        for part in value.split(","):
            k, eq, v = part.partition("=")
            opts[k.strip().lower()] = v.strip() if eq else "true"
        kind = opts.pop("type", "bind")
        target = opts.pop("target", "") or opts.pop("dst", "") or opts.pop("destination", "")
        if not target:
            raise step.error(f"RUN --mount={value}: a target is required")
        target = step.expand(target)
        if not target.startswith("/"):
            target = os.path.join(step.state.workdir, target)
        if kind == "cache":
            out.append(_cache_mount(step, target, opts, value))
            keys.append(["cache", target])
        elif kind == "bind":
            mount, key = _bind_mount(step, target, opts, value)
            out.append(mount)
            keys.append(key)
        elif kind == "tmpfs":
            size = opts.pop("size", "")
            _no_more(step, opts, value)
            spec: dict[str, Any] = {"Type": "tmpfs", "Target": target}
            if size:
                from sampan.units import ram_in_bytes

                spec["TmpfsOptions"] = {"SizeBytes": ram_in_bytes(size)}
            out.append(spec)
            keys.append(["tmpfs", target, size])
        else:
            raise Unsupported(
                f"{step.build.file}:{step.inst.line}: RUN --mount type={kind} is not supported "
                "(bind, cache and tmpfs are)"
            )
    return out, keys


def _no_more(step: Step, opts: dict[str, str], value: str) -> None:
    if opts:
        raise Unsupported(
            f"{step.build.file}:{step.inst.line}: RUN --mount={value}: option "
            f"{sorted(opts)[0]} is not supported"
        )


def _cache_mount(step: Step, target: str, opts: dict[str, str], value: str) -> dict[str, Any]:
    import hashlib

    ident = opts.pop("id", "") or target
    for skip in ("sharing", "mode", "uid", "gid"):
        opts.pop(skip, None)  # one directory shared by every build; owner as made
    if opts.pop("from", "") or opts.pop("source", ""):
        raise Unsupported(f"{step.build.file}:{step.inst.line}: RUN --mount={value}: a cache "
                          "mount's from/source is not supported")  # fmt: skip
    readonly = opts.pop("readonly", opts.pop("ro", "false")) == "true"
    _no_more(step, opts, value)
    name = hashlib.sha256(ident.encode()).hexdigest()[:32]
    path = os.path.join(step.build.engine.root, "build-cache", name)
    os.makedirs(path, mode=0o755, exist_ok=True)
    return {"Type": "bind", "Source": path, "Target": target, "ReadOnly": readonly}


def _bind_mount(
    step: Step, target: str, opts: dict[str, str], value: str
) -> tuple[dict[str, Any], object]:
    from sampan.build.context import content_key, select

    source = step.expand(opts.pop("source", "") or opts.pop("src", "") or ".")
    if opts.pop("from", ""):
        raise Unsupported(
            f"{step.build.file}:{step.inst.line}: RUN --mount={value}: a bind mount from a "
            "stage or image is not supported; COPY --from it"
        )
    if opts.pop("rw", opts.pop("readwrite", "false")) == "true":
        raise Unsupported(
            f"{step.build.file}:{step.inst.line}: RUN --mount={value}: rw bind mounts are not "
            "supported (their writes would not be discarded)"
        )
    opts.pop("readonly", None)
    opts.pop("ro", None)
    _no_more(step, opts, value)
    ctx = step.build.ctx
    found = select(ctx, [source], file=step.build.file, line=step.inst.line)
    path = os.path.realpath(os.path.join(ctx, source.lstrip("/")))
    if not (path == os.path.realpath(ctx) or path.startswith(os.path.realpath(ctx) + "/")):
        raise step.error(f"RUN --mount={value}: source leads out of the build context")
    key = ["bind", target, source, content_key(ctx, found)]
    return {"Type": "bind", "Source": path, "Target": target, "ReadOnly": True}, key


def run(step: Step) -> None:
    state = step.state
    cmd = _command(step)
    env = state.env
    args = [f"{k}={v}" for k, v in sorted(state.args.items()) if k not in env]
    network = _network(step)
    mounts, mount_keys = _mounts(step)
    created_by = step.args_prefix() + " ".join(cmd)
    secret_free = [a for a in args if a.partition("=")[0] not in PROXY_ARGS]
    key = step.key(cmd, secret_free, network, mount_keys)
    entry = {"created_by": created_by}

    def make() -> ImageRecord:
        host: dict[str, Any] = {"NetworkMode": network, "Mounts": mounts}
        c = _create(step, {"Cmd": cmd, "Env": args, "HostConfig": host})
        step.emit({"stream": f" ---> Running in {c.id[:12]}\n"})
        tail: list[str] = []
        ok = False
        try:
            targets = [m["Target"] for m in mounts]
            stubs = _missing(step, c, targets)
            code = _start_and_follow(step, c, tail)
            if code != 0:
                shown = " ".join(cmd) if step.inst.json else cmd[-1]
                lines = "".join(tail[-_TAIL_LINES:])
                more = f"\n{lines.rstrip()}" if lines.strip() else ""
                from sampan.build.builder import BuildFailed

                raise BuildFailed(
                    f"{step.build.file}:{step.inst.line}: RUN {shown}: the command "
                    f"'{' '.join(cmd)}' returned a non-zero code: {code}{more}", code
                )  # fmt: skip
            _remove_stubs(step, c, stubs, targets)
            record = _commit(step, c, entry)
            ok = True
            return record
        finally:
            if (ok and step.build.options.rm) or step.build.options.force_rm:
                _remove(step, c)
                step.emit({"stream": f" ---> Removed intermediate container {c.id[:12]}\n"})

    step.commit(key, entry, make)


def _missing(step: Step, c: Container, targets: list[str]) -> list[str]:
    """Of the --mount TARGETS, the top directory the runtime will make for each (the
    first part of its path missing from the image), "" where none is."""
    from sampan.engine import inroot
    from sampan.engine.container_fs import private_root

    if not targets:
        return []
    out = []
    with private_root(step.build.engine.containers, c, binds=False) as root:
        for target in targets:
            path = inroot.clean(target)
            top = ""
            while path != "/":
                try:
                    inroot.resolve(root, path, follow=True).close()
                    break
                except OSError:
                    top = path
                    path = os.path.dirname(path)
            out.append(top)
    return out


def _remove_stubs(step: Step, c: Container, stubs: list[str], targets: list[str]) -> None:
    """The mount points a RUN --mount made go, if still empty (as BuildKit removes them):
    they are not the image's content."""
    from sampan.engine import inroot
    from sampan.engine.container_fs import private_root

    if not any(stubs):
        return
    with private_root(step.build.engine.containers, c, binds=False) as root:
        for top, target in zip(stubs, targets, strict=True):
            if not top:
                continue
            path = inroot.clean(target)
            while True:  # the deepest first, up to TOP, each only if empty
                try:
                    with inroot.resolve(root, os.path.dirname(path), follow=True) as found:
                        fd = found.open_dir()
                    try:
                        os.rmdir(os.path.basename(path), dir_fd=fd)
                    finally:
                        os.close(fd)
                except OSError:
                    break
                if path == top:
                    break
                path = os.path.dirname(path)


def _start_and_follow(step: Step, c: Container, tail: list[str]) -> int:
    from sampan.engine.logfile import LogReader

    service = step.build.engine.containers
    exits = c.exits
    service.start(c.id)
    reader = LogReader(service.log_path(c))
    try:
        while True:
            with service.changed:
                running = c.running or c.starting
            for _stream, _time, data in reader.entries():
                text = data.decode(errors="replace")
                tail.append(text)
                del tail[:-_TAIL_LINES]
                step.emit({"stream": text})
            if not running:
                break
            time.sleep(0.02)
        code, _error = service.wait(c, "not-running", exits)
        for _stream, _time, data in reader.entries():
            text = data.decode(errors="replace")
            tail.append(text)
            step.emit({"stream": text})
        return code
    finally:
        reader.close()


# -- COPY / ADD ------------------------------------------------------------------------


@contextlib.contextmanager
def _source_root(step: Step, name: str) -> Iterator[tuple[int, str]]:
    """COPY --from=NAME: (an fd of the root of that stage's or image's filesystem, the
    image id), mounted for the duration."""
    from sampan.build.builder import _stage_index
    from sampan.engine.container_fs import private_root

    build = step.build
    assert build.df is not None
    df_index = _stage_index(build.df, name, step.state.index)
    if df_index is not None:
        image = build.results[df_index]
        if image is None:
            image = build.scratch_image()
    else:
        image = build.resolve_image(name, step.inst.line)
    service = build.engine.containers
    c = service.get(service.create({"Image": image.id, "Cmd": ["#(nop)"], "Entrypoint": [""],
                                    "HostConfig": {"NetworkMode": "none"}}))  # fmt: skip
    try:
        with private_root(service, c, binds=False) as fd:
            yield fd, image.id
    finally:
        _remove(step, c)


def copy(step: Step, *, add: bool) -> None:
    from sampan.build.context import content_key, select

    inst = step.inst
    flags = step.flags
    name = "ADD" if add else "COPY"
    for flag in ("parents", "exclude", "checksum", "keep-git-dir"):
        if flag in flags:
            raise Unsupported(f"{step.build.file}:{inst.line}: {name} --{flag} is not supported")
    words = list(inst.args) if inst.json else step.words()
    if inst.json:
        words = [step.expand(w) for w in words]
    heredocs = {doc.name: doc for doc in inst.heredocs}
    extra: dict[str, bytes] = {}
    sources_named = []
    for word in words[:-1]:
        marker = word.lstrip("<-").strip("\"'")
        if word.startswith("<<") and marker in heredocs:
            doc = heredocs[marker]
            content = doc.content if not doc.expand else step.expand_heredoc(doc.content)
            extra[marker] = content.encode()
        else:
            sources_named.append(word)
    if len(words) < 2:
        raise step.error(f"{name} requires at least two arguments, but got {len(words)}")
    dest = words[-1]
    for src in sources_named:
        if "://" in src or src.startswith("git@"):
            raise Unsupported(
                f"{step.build.file}:{inst.line}: {name} {src}: remote sources need the network; "
                "this builder works offline (download it into the context)"
            )
    chown = step.expand(flags["chown"]) if flags.get("chown") else ""
    chmod_text = step.expand(flags["chmod"]) if flags.get("chmod") else ""
    chmod = None
    if chmod_text:
        try:
            chmod = int(chmod_text, 8)
        except ValueError:
            raise step.error(f"{name} --chmod={chmod_text}: expected an octal mode") from None
        if not 0 <= chmod <= 0o7777:
            raise step.error(f"{name} --chmod={chmod_text}: expected an octal mode")
    source = flags.get("from", "")
    with contextlib.ExitStack() as stack:
        root_fd = -1
        if source:
            root_fd, source_id = stack.enter_context(_source_root(step, step.expand(source)))
            ctx = f"/proc/self/fd/{root_fd}"
        else:
            ctx, source_id = step.build.ctx, ""
        found = select(ctx, sources_named, file=step.build.file, line=inst.line, root_fd=root_fd)
        # From an image, its id is the content's identity; from the context, the content.
        hashed = content_key(ctx, found) if sources_named and not source else ""
        if extra:
            import hashlib

            h = hashlib.sha256(hashed.encode())
            for marker in sorted(extra):
                h.update(marker.encode() + b"\0" + extra[marker] + b"\0")
            hashed = "sha256:" + h.hexdigest()
        kind = "multi" if len(words) > 2 else (
            "dir" if found and found[0].kind == "dir" else "file")  # fmt: skip
        description = f"{name} {kind}:{hashed.removeprefix('sha256:')} in {dest} "
        key = step.key(source_id, sources_named, sorted(extra), dest, chown, chmod,
                       step.state.workdir, hashed)  # fmt: skip
        entry = {"created_by": "/bin/sh -c #(nop) " + description}

        def make() -> ImageRecord:
            from sampan.build.copy import copy_into, lookup_user
            from sampan.engine.container_fs import private_root

            c = _create(step, {})
            service = step.build.engine.containers
            try:
                with private_root(service, c, binds=False) as root:
                    owner = None
                    if chown:
                        user, _, group = chown.partition(":")
                        owner = lookup_user(root, user, group)
                    copy_into(
                        root, ctx, found, dest, workdir=step.state.workdir, chown=owner,
                        chmod=chmod, extract_tars=add, extra=extra, label=f"{name} {dest}",
                    )  # fmt: skip
                return _commit(step, c, entry)
            finally:
                _remove(step, c)

        step.commit(key, entry, make)


# -- WORKDIR -----------------------------------------------------------------------------


def _mkdirs(root: int, path: str) -> bool:
    """PATH made inside the tree at ROOT (symlinks evaluated in its scope); whether anything
    was made."""
    from sampan.engine import inroot

    target = inroot.scoped_path(root, path)
    made = False
    current = "/"
    for part in [p for p in target.split("/") if p]:
        with inroot.resolve(root, current, follow=True) as found:
            fd = found.open_dir()
        try:
            os.mkdir(part, 0o755, dir_fd=fd)
            os.chmod(part, 0o755, dir_fd=fd, follow_symlinks=False)
            made = True
        except FileExistsError:
            pass
        finally:
            os.close(fd)
        current = current.rstrip("/") + "/" + part
    with inroot.resolve(root, current, follow=True) as found:
        os.close(found.open_dir())  # a directory, or NotADirectoryError
    return made


def workdir(step: Step, path: str) -> None:
    from sampan.engine.container_fs import private_root

    key = step.key(path, step.state.config)
    entry = {"created_by": f"/bin/sh -c #(nop) WORKDIR {path}"}

    def make() -> ImageRecord:
        c = _create(step, {})
        service = step.build.engine.containers
        try:
            with private_root(service, c, binds=False) as root:
                try:
                    made = _mkdirs(root, path)
                except (NotADirectoryError, FileExistsError):
                    raise InvalidArgument(
                        f"{step.build.file}:{step.inst.line}: WORKDIR {path}: not a directory"
                    ) from None
            return _commit(step, c, entry, layer=made)
        finally:
            _remove(step, c)

    step.commit(key, entry, make)
