"""``docker commit``: a container's writable layer becomes a new image over its image.

The layer is the snapshot's upper dir written as a layer tar
(``layertar.write_layer`` with overlay whiteouts: a 0/0 char device becomes
``.wh.NAME``, an opaque directory gets ``.wh..wh..opq``), gzip-compressed
into the content store; with the vfs driver, the changes against the image's
tree (``container_changes.tree_changes``) are written instead, deletions as
whiteouts.  A container that changed nothing still gets a layer (an empty
tar), as docker's commit does.

The image config is the parent's with the new diff id and a history entry
(``created_by`` the container's Cmd joined by spaces, the author and the
comment), and as its ``config`` what docker's commit makes: the request's
config (or, when it sends none, the container's), ``--change`` instructions
applied (archive_import.parse_changes: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL,
ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR), then the container's config
filling what is left unset (docker's merge: Env by key, labels, exposed
ports and volumes added, Cmd/Entrypoint only when neither is set, ...).

The manifest is of the parent's kind (docker schema 2 or OCI) and lists the
parent's layer blobs plus the new one; ``ImageStore.commit_image`` unpacks
the new layer and records the image in one transaction, so a crash leaves
no half-made image.

With ``pause`` (the default) a running container is frozen while its layer
is written (unless it was paused already) and thawed after.
"""

from __future__ import annotations

import contextlib
import copy
import os
import stat

from sampan.engine.image_steps import child_image, container_layer
from sampan.errors import Conflict, InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from sampan.engine.containers import Container, ContainerService

__all__ = ["apply_changes", "check_config", "commit", "merge_config", "write_tree_diff"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """CONFIG with the Dockerfile instructions CHANGES applied (a new dict)."""
    from sampan.image.archive_import import parse_changes

    out = copy.deepcopy(config)
    if not changes:
        return out
    made = parse_changes(changes)
    for key in ("Cmd", "Entrypoint", "User", "WorkingDir", "StopSignal"):
        if key in made:
            out[key] = made[key]
    if "Entrypoint" in made and "Cmd" not in made:
        out["Cmd"] = None  # as a Dockerfile's ENTRYPOINT: the old CMD goes
    for item in made.get("Env") or []:
        key = item.partition("=")[0]
        env = [e for e in out.get("Env") or [] if e.partition("=")[0] != key]
        out["Env"] = [*env, item]
    for key in ("Labels", "ExposedPorts", "Volumes"):
        if key in made:
            out[key] = {**(out.get(key) or {}), **made[key]}
    if "OnBuild" in made:
        out["OnBuild"] = [*(out.get("OnBuild") or []), *made["OnBuild"]]
    return out


_STR_FIELDS = ("Hostname", "Domainname", "User", "WorkingDir", "StopSignal", "Image")
_LIST_FIELDS = ("Env", "OnBuild", "Cmd", "Entrypoint")
_OBJECT_FIELDS = ("ExposedPorts", "Volumes", "Labels", "Healthcheck")


def check_config(config: dict[str, Any]) -> dict[str, Any]:
    """POST /commit's body: the fields the merge reads, of docker's types (a 400 naming the
    field, never a TypeError deep in the merge); Cmd and Entrypoint as a string are one
    argument (docker's StrSlice)."""
    out = dict(config)
    for key in _STR_FIELDS:
        if out.get(key) is not None and not isinstance(out[key], str):
            raise InvalidArgument(f"config {key}: expected a string")
    for key in _LIST_FIELDS:
        value = out.get(key)
        if isinstance(value, str) and key in ("Cmd", "Entrypoint"):
            out[key] = value = [value]
        if value is not None and (
            not isinstance(value, list) or not all(isinstance(v, str) for v in value)
        ):
            raise InvalidArgument(f"config {key}: expected a list of strings")
    for key in _OBJECT_FIELDS:
        if out.get(key) is not None and not isinstance(out[key], dict):
            raise InvalidArgument(f"config {key}: expected an object")
    if not all(isinstance(v, str) for v in (out.get("Labels") or {}).values()):
        raise InvalidArgument("config Labels: expected an object of strings")
    return out


def merge_config(user: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """docker's commit merge: USER's config, what it leaves unset from CONTAINER's."""
    out = copy.deepcopy(user)
    if not out.get("User"):
        out["User"] = container.get("User", "")
    ports = dict(container.get("ExposedPorts") or {})
    ports.update(out.get("ExposedPorts") or {})
    out["ExposedPorts"] = ports or None
    env = list(out.get("Env") or [])
    keys = {e.partition("=")[0] for e in env}
    env += [e for e in container.get("Env") or [] if e.partition("=")[0] not in keys]
    out["Env"] = env or None
    labels = dict(container.get("Labels") or {})
    labels.update(out.get("Labels") or {})
    out["Labels"] = labels
    if not out.get("Entrypoint"):
        if not out.get("Cmd"):
            out["Cmd"] = container.get("Cmd")
        if out.get("Entrypoint") is None:
            out["Entrypoint"] = container.get("Entrypoint")
    if out.get("Healthcheck") is None and container.get("Healthcheck") is not None:
        out["Healthcheck"] = container["Healthcheck"]
    if not out.get("WorkingDir"):
        out["WorkingDir"] = container.get("WorkingDir", "")
    volumes = dict(container.get("Volumes") or {})
    volumes.update(out.get("Volumes") or {})
    out["Volumes"] = volumes or None
    if not out.get("StopSignal") and container.get("StopSignal"):
        out["StopSignal"] = container["StopSignal"]
    return out


@contextlib.contextmanager
def _paused(service: ContainerService, c: Container, pause: bool) -> Iterator[None]:
    """C frozen for the duration when PAUSE and it runs and is not paused already."""
    from sampan.runtime import query

    frozen = False
    if pause:
        with service.changed:
            if c.running and c.status != "paused":
                try:
                    query.pause(service.runtime_root, c.id)
                    frozen = True
                except Conflict:
                    pass  # it is not running (any more) or paused already
    try:
        yield
    finally:
        if frozen:
            with service.changed, contextlib.suppress(Conflict):
                query.resume(service.runtime_root, c.id)


def write_tree_diff(base: str | None, tree: str, out: Any) -> str:
    """The layer tar that makes BASE into TREE (vfs): changed entries, whiteouts."""
    import hashlib

    from sampan.engine.container_changes import tree_changes

    class _Hashed:
        def __init__(self) -> None:
            self.digest = hashlib.sha256()

        def write(self, data: bytes) -> int:
            self.digest.update(data)
            out.write(data)
            return len(data)

    hashed = _Hashed()
    root = os.open(tree, _DIR_FLAGS)
    found = tree_changes(base, tree, ignore=frozenset(("/etc/hosts", "/etc/hostname",
                                                       "/etc/resolv.conf")))  # fmt: skip
    try:
        _write_entries(hashed, root, found)
    finally:
        os.close(root)
    return "sha256:" + hashed.digest.hexdigest()


def _write_entries(out: Any, root: int, found: list[tuple[str, int]]) -> None:
    import tarfile

    from sampan.engine.container_changes import DELETED

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path, kind in found:
            name = path.lstrip("/")
            if kind == DELETED:
                head, _, tail = name.rpartition("/")
                info = tarfile.TarInfo((head + "/" if head else "") + ".wh." + tail)
                tar.addfile(info)
                continue
            _add_entry(tar, root, name)


def _add_entry(tar: Any, root: int, name: str) -> None:
    """NAME of the tree open at ROOT into TAR, reached by directory fds without following a
    symlink: a running container (commit --pause=false) can swap a directory on the way
    for a symlink to the host's, or a file for a fifo, after the diff was made."""
    *dirs, base = name.split("/")
    fd = os.dup(root)
    try:
        for part in dirs:
            try:
                sub = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                raise InvalidArgument(f"/{name}: changed while committed: {exc.strerror}") from None
            os.close(fd)
            fd = sub
        where = os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        try:
            if stat.S_ISREG(os.fstat(where).st_mode):
                with open(f"/proc/self/fd/{where}", "rb") as f:
                    info = tar.gettarinfo(arcname=name, fileobj=f)
                    info.uname = info.gname = ""
                    tar.addfile(info, f if info.isreg() else None)
                return
            info = tar.gettarinfo(f"/proc/self/fd/{fd}/{base}", arcname=name)
            if info.isreg():
                raise InvalidArgument(f"/{name}: changed while committed")
            info.uname = info.gname = ""
            tar.addfile(info)
        finally:
            os.close(where)
    finally:
        os.close(fd)


def commit(
    service: ContainerService,
    ref: str,
    *,
    repo: str = "",
    tag: str = "",
    comment: str = "",
    author: str = "",
    pause: bool = True,
    changes: list[str] | None = None,
    config: dict[str, Any] | None = None,
) -> str:
    """POST /commit: the new image's id."""
    from sampan.oci.reference import parse_reference

    c = service.get(ref)
    names = []
    if repo:
        name = parse_reference(f"{repo}:{tag}" if tag else repo)
        if name.digest is not None:
            raise InvalidArgument(f"{repo}: refusing to create a tag with a digest reference")
        names.append(name)
    elif tag:
        raise InvalidArgument("tag: a tag needs a repository name")
    if config is not None and not isinstance(config, dict):
        raise InvalidArgument("request body: expected a container config object")
    user = check_config(config) if config else c.config
    new_config = merge_config(apply_changes(user, list(changes or [])), c.config)
    store = service.engine.store()
    parent = store.get(c.image)
    base = {k: v for k, v in store.config_of(parent).raw.items()
            if k not in ("author", "comment")}  # fmt: skip
    entry: dict[str, Any] = {}
    if author:
        base["author"] = entry["author"] = author
    entry["created_by"] = " ".join(c.config.get("Cmd") or [])
    if comment:
        base["comment"] = entry["comment"] = comment
    with store.writing():
        with _paused(service, c, pause):
            layer = container_layer(service, c, store)
        record = child_image(
            store, parent, new_config, entry, layer, names=names, base=base, record_parent=False
        )
    attrs = {"name": c.name, "image": c.image_name, "comment": comment, "imageID": record.id}
    if names:
        attrs["imageRef"] = str(names[0])
    attrs.update(c.config.get("Labels") or {})
    service.engine.events.emit("container", "commit", c.id, attrs)
    return record.id
