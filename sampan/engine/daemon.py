"""Engine: one daemon's state -- its configuration, its directories, its image store.

The API server runs every connection in a thread of its own.  They share
one ImageStore over ROOT/image, which gives each thread its own SQLite
connection and gc.lock file on first use (a transaction and a flock belong
to one thread), so threads coordinate exactly as two ``sampan`` processes
would; ``release_thread`` closes the calling thread's when its connection
ends.  (Opening a whole store per thread cost ~1 ms on every request.)

    engine = Engine("/var/lib/sampan", "/run/sampan", load_config())
    records = engine.store().list()
    engine.close()
"""

from __future__ import annotations

import os
import threading
import time

from sampan.engine.config import DaemonConfig

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sampan.engine.containers import ContainerService
    from sampan.engine.images import ImageService
    from sampan.engine.volumes import VolumeService
    from sampan.engine.zygote import Zygote
    from sampan.image.store import ImageStore

__all__ = ["DEFAULT_EXEC_ROOT", "DEFAULT_ROOT", "Engine"]

DEFAULT_ROOT = "/var/lib/sampan"
DEFAULT_EXEC_ROOT = "/run/sampan"


class Engine:
    """The composition root of the daemon: configuration, directories, services."""

    def __init__(self, root: str, exec_root: str, config: DaemonConfig | None = None) -> None:
        self.root = os.path.abspath(root)
        self.exec_root = os.path.abspath(exec_root)
        self.config = config or DaemonConfig()
        self.started = time.time()
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        os.makedirs(self.exec_root, mode=0o711, exist_ok=True)
        self._lock = threading.Lock()
        self._store: ImageStore | None = None
        self._closed = False
        self._zygote: Zygote | None = None
        self._zygote_failed = False
        from sampan.engine.events import EventBus

        self.events = EventBus()
        self.images = _images(self)
        self.id = self._engine_id()
        self.volumes = _volumes(self)
        from sampan.engine.networks import NetworkService

        self.networks = NetworkService(self)
        self.containers = _containers(self)
        from sampan.engine.attach import AttachHub
        from sampan.engine.exec import ExecService

        self.attach = AttachHub(self)  # stdio of running containers (their monitors')
        self.execs = ExecService(self)
        # Under the networks' lock: a restart policy's timer scheduled by the containers'
        # restore waits for the networks' reconciliation, whose snapshot of what runs
        # would otherwise miss it (its address released, its namespace removed).
        with self.networks.lock:
            self.containers.restore()  # re-adopt the monitors of containers still running
            every = self.containers.all()
            self.networks.restore({c.id: c for c in every if c.running}, {c.id for c in every})
        self.volumes.reconcile()  # volume devices no running container uses: unmounted
        self.zygote()  # warm up now: the first start need not wait for it

    @property
    def image_root(self) -> str:
        return os.path.join(self.root, "image")

    def store(self) -> ImageStore:
        """The image store (opened on first use), shared by every thread."""
        store = self._store
        if store is None:
            with self._lock:
                if self._store is None:
                    from sampan.image.store import ImageStore

                    self._store = ImageStore(self.image_root)
                store = self._store
        return store

    def zygote(self) -> Zygote | None:
        """The monitors' fork server (sampan/engine/zygote.py), (re)started when needed;
        None when it cannot run, and monitors are then spawned as processes of their own."""
        with self._lock:
            if self._closed or self._zygote_failed:
                return None
            if self._zygote is not None and not self._zygote.alive:
                self._zygote.close()
                self._zygote = None
            if self._zygote is None:
                from sampan.engine.zygote import Zygote

                try:
                    self._zygote = Zygote.start(os.path.join(self.exec_root, "containers"))
                except OSError as exc:
                    import sys

                    sys.stderr.write(f"monitor fork server: {exc}; monitors will be spawned\n")
                    self._zygote_failed = True
            return self._zygote

    def release_thread(self) -> None:
        """Close the calling thread's connection to the store, if it opened one."""
        if self._store is not None:
            self._store.release_thread()

    def _engine_id(self) -> str:
        """A stable id for ``docker info``'s ID, kept in ROOT/engine-id."""
        path = os.path.join(self.root, "engine-id")
        try:
            with open(path) as f:
                text = f.read().strip()
            if text:
                return text
        except FileNotFoundError:
            pass
        import uuid

        text = str(uuid.uuid4())
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, path)
        return text

    def close(self) -> None:
        """Close the store and stop the fork server (call once the server has stopped)."""
        with self._lock:
            store, self._store = self._store, None
            self._closed = True
            zygote, self._zygote = self._zygote, None
        if zygote is not None:
            zygote.close()
        self.networks.close()
        if store is not None:
            store.close()


def _images(engine: Engine) -> ImageService:
    from sampan.engine.images import ImageService

    return ImageService(engine)


def _volumes(engine: Engine) -> VolumeService:
    from sampan.engine.volumes import VolumeService

    return VolumeService(engine)


def _containers(engine: Engine) -> ContainerService:
    from sampan.engine.containers import ContainerService

    return ContainerService(engine)
