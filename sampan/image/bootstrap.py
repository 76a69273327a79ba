"""Base images made offline: busybox from Debian's busybox-static, Debian by debootstrap.

A new machine has no registry to pull from; these give it something real
to run.  Each builds a root filesystem in a scratch directory inside the
store, writes it as one gzip'd layer, and records a Docker schema 2 image
(the form every registry and ``docker load`` accepts).

The busybox image is reproducible: its files and its ``created`` time come
from the installed busybox binary, so bootstrapping twice gives the same
image id.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import os
import shutil
import subprocess
import tempfile
import time

from sampan.errors import InvalidArgument, NotFound
from sampan.image.layertar import write_layer
from sampan.oci import image as oi
from sampan.oci.reference import parse_reference
from sampan.units import rfc3339

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from sampan.image.store import ImageRecord, ImageStore

    Log = Callable[[str], None] | None

BUSYBOX = "/bin/busybox"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_MIRROR = "http://deb.debian.org/debian"

_PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "nobody:x:65534:65534:nobody:/home:/bin/false\n"
)
_GROUP = "root:x:0:\ndaemon:x:1:\ntty:x:5:\nnogroup:x:65534:\n"


@contextlib.contextmanager
def _scratch(store: ImageStore, what: str) -> Iterator[str]:
    """A scratch dir in the store, removed at the end; a full disk is reported as WHAT's."""
    base = os.path.join(store.root, "tmp")
    os.makedirs(base, exist_ok=True)
    path = tempfile.mkdtemp(prefix="bootstrap-", dir=base)
    try:
        yield path
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # The file being written: a copy's target (filename2), not its source; an unnamed
        # write is the layer tarball's, in PATH (errors with a context of their own keep it).
        where = exc.filename2 or exc.filename
        if where is None and exc.strerror == os.strerror(exc.errno):
            where = path
        detail = f"{where}: {exc.strerror}" if where else exc.strerror
        raise OSError(exc.errno, f"bootstrap {what}: {detail}") from None
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _busybox_rootfs(rootfs: str, busybox: str) -> str:
    """A busybox tree like the official image's: one binary, every applet hardlinked."""
    for d in ("bin", "dev", "etc", "home", "proc", "root", "sys", "tmp", "usr/bin", "usr/sbin",
              "sbin", "var/spool/mail", "var/www"):  # fmt: skip
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    os.chmod(os.path.join(rootfs, "tmp"), 0o1777)
    os.chmod(os.path.join(rootfs, "root"), 0o700)
    binary = os.path.join(rootfs, "bin", "busybox")
    shutil.copy2(busybox, binary)
    listing = subprocess.run(
        [busybox, "--list-full"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in listing:
        target = os.path.join(rootfs, applet)
        if os.path.lexists(target) or os.path.dirname(applet) not in (
            "bin",
            "sbin",
            "usr/bin",
            "usr/sbin",
        ):
            continue
        os.link(binary, target)
    for name, text in (("passwd", _PASSWD), ("group", _GROUP)):
        with open(os.path.join(rootfs, "etc", name), "w") as f:
            f.write(text)
    banner = subprocess.run([busybox], capture_output=True, text=True).stdout.split("\n")[0]
    return banner.split(" multi-call")[0].strip() or "busybox"


def _commit_rootfs(
    store: ImageStore,
    rootfs: str,
    scratch: str,
    *,
    names: list[str],
    created: float,
    created_by: str,
    config: dict[str, Any],
    log: Log,
) -> ImageRecord:
    refs = [parse_reference(name) for name in names]
    for ref in refs:
        if ref.digest is not None:
            raise InvalidArgument(f"tag {ref}: a tag cannot carry a digest")
    raw_path = os.path.join(scratch, "layer.tar")
    gz_path = os.path.join(scratch, "layer.tar.gz")
    with open(raw_path, "wb") as raw:
        diff_id = write_layer(rootfs, raw, overlay_whiteouts=False)
    with (
        open(raw_path, "rb") as raw,
        open(gz_path, "wb") as out,
        gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0) as gz,
    ):
        shutil.copyfileobj(raw, gz, 1 << 20)
    os.unlink(raw_path)
    if log:
        log(f"layer {diff_id}")
    with store.writing():
        with open(gz_path, "rb") as blob:
            layer_digest, layer_size = store.content.put_stream(blob)
        stamp = rfc3339(int(created) * 1_000_000_000)  # whole seconds: reproducible ids
        image_config = {
            "architecture": oi.host_platform().architecture,
            "os": "linux",
            "created": stamp,
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": stamp, "created_by": created_by}],
        }
        from sampan import _json

        config_bytes = _json.dumps(image_config).encode()
        config_digest = store.content.put(config_bytes)
        manifest = oi.Manifest(
            oi.DOCKER_MANIFEST,
            oi.Descriptor(oi.DOCKER_CONFIG, config_digest, len(config_bytes)),
            (oi.Descriptor(oi.DOCKER_LAYER_GZIP, layer_digest, layer_size),),
        )
        manifest_digest = store.content.put(manifest.to_bytes())
        return store.commit_image(manifest_digest, names=refs)


def busybox(store: ImageStore, names: list[str], *, log: Log = None) -> ImageRecord:
    """``sampan image bootstrap busybox``: the installed busybox-static as an image."""
    if not os.path.exists(BUSYBOX):
        raise NotFound(f"{BUSYBOX} is missing: install Debian's busybox-static")
    with _scratch(store, names[0] if names else "busybox") as scratch:
        rootfs = os.path.join(scratch, "rootfs")
        version = _busybox_rootfs(rootfs, BUSYBOX)
        created = os.stat(BUSYBOX).st_mtime
        for dirpath, dirnames, filenames in os.walk(rootfs):
            for name in dirnames + filenames:
                os.utime(os.path.join(dirpath, name), (created, created), follow_symlinks=False)
        os.utime(rootfs, (created, created))
        if log:
            log(f"rootfs from {BUSYBOX} ({version})")
        return _commit_rootfs(
            store,
            rootfs,
            scratch,
            names=names,
            created=created,
            created_by=f"sampan image bootstrap busybox ({version})",
            config={"Env": [PATH_ENV], "Cmd": ["sh"]},
            log=log,
        )


def host_mirror() -> str:
    """The Debian mirror the host's apt uses (deb822 .sources or sources.list)."""
    candidates = []
    with contextlib.suppress(OSError):
        for name in sorted(os.listdir("/etc/apt/sources.list.d")):
            if name.endswith(".sources"):
                candidates.append(os.path.join("/etc/apt/sources.list.d", name))
    candidates.append("/etc/apt/sources.list")
    for path in candidates:
        with contextlib.suppress(OSError), open(path) as f:
            for line in f:
                words = line.split()
                if path.endswith(".sources") and words[:1] == ["URIs:"]:
                    for uri in words[1:]:
                        if "security" not in uri:
                            return uri
                elif words[:1] == ["deb"]:
                    uris = [w for w in words[1:] if "://" in w and "security" not in w]
                    if uris:
                        return uris[0]
    return DEFAULT_MIRROR


def debian(
    store: ImageStore,
    names: list[str],
    *,
    suite: str = "bookworm",
    mirror: str | None = None,
    log: Log = None,
) -> ImageRecord:
    """``sampan image bootstrap debian``: debootstrap --variant=minbase as an image."""
    debootstrap = shutil.which("debootstrap") or (
        "/usr/sbin/debootstrap" if os.path.exists("/usr/sbin/debootstrap") else None
    )
    if debootstrap is None:
        raise NotFound("debootstrap is not installed: apt-get install debootstrap")
    if not suite.isalnum():
        raise InvalidArgument(f"--suite {suite!r}: expected a Debian suite name like bookworm")
    mirror = mirror or host_mirror()
    with _scratch(store, names[0] if names else "debian") as scratch:
        rootfs = os.path.join(scratch, "rootfs")
        if log:
            log(f"debootstrap --variant=minbase {suite} from {mirror}")
        done = subprocess.run(
            [debootstrap, "--variant=minbase", suite, rootfs, mirror],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
            raise InvalidArgument(f"debootstrap {suite} from {mirror} failed:\n{tail}")
        # What a container gets from its runtime, and what only the build host needs.
        for sub in ("dev", "proc", "sys", "var/cache/apt/archives", "var/lib/apt/lists",
                    "var/log", "tmp", "run"):  # fmt: skip
            _empty(os.path.join(rootfs, sub))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(rootfs, "etc", "hostname"))
        created = time.time()
        return _commit_rootfs(
            store,
            rootfs,
            scratch,
            names=names,
            created=created,
            created_by=f"sampan image bootstrap debian (debootstrap --variant=minbase {suite})",
            config={"Env": [PATH_ENV], "Cmd": ["bash"]},
            log=log,
        )


def _empty(path: str) -> None:
    """Remove a directory's contents without following anything out of it."""
    if not os.path.isdir(path) or os.path.islink(path):
        return
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)
