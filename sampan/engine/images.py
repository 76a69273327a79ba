"""The image service: the store's records in the shapes of docker's Engine API.

The API server calls these and encodes what they return; the local CLI
shapes its tables from the same helpers (``familiar``, ``image_inspect``,
``image_filter``).  Names in docker's messages are familiar ("busybox:latest"),
and a missing image is docker's ``No such image: NAME`` -- the docker CLI
and docker-py match on those words.

Registry operations take the caller's credentials (the API's X-Registry-Auth);
the daemon never reads a user's ~/.docker/config.json.
"""

from __future__ import annotations

import time

from sampan.errors import InvalidArgument, NotFound
from sampan.units import parse_rfc3339, rfc3339

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, BinaryIO

    from sampan.engine.daemon import Engine
    from sampan.image.registry.auth import Credentials
    from sampan.image.registry.client import RegistryClient
    from sampan.image.registry.progress import Progress
    from sampan.image.store import ImageRecord, ImageStore, Removal

__all__ = [
    "FILTER_KEYS",
    "NONE",
    "ImageService",
    "created_at",
    "familiar",
    "image_filter",
    "image_inspect",
    "no_such_image",
]

NONE = "<none>"
FILTER_KEYS = ("dangling", "reference", "before", "since", "label")


# -- shapes shared with the CLI ------------------------------------------------------


_FAMILIAR: dict[str, tuple[str, str]] = {}  # a stored name's parts never change
_LABELS: dict[str, dict[str, str]] = {}  # nor an image's labels: its id is its config's digest
_CACHE_LIMIT = 100_000


def familiar(name: str) -> tuple[str, str]:
    """("busybox", "latest") for "docker.io/library/busybox:latest"."""
    parts = _FAMILIAR.get(name)
    if parts is None:
        from sampan.oci.reference import parse_reference

        ref = parse_reference(name, default_tag=False)
        parts = ref.repository().familiar(), ref.tag or NONE
        if len(_FAMILIAR) >= _CACHE_LIMIT:
            _FAMILIAR.clear()
        _FAMILIAR[name] = parts
    return parts


def familiar_name(name: str) -> str:
    """ "busybox:latest" for a stored tag, "busybox@sha256:..." for a stored repo digest."""
    if "@" in name:
        repo, _, digest = name.partition("@")
        return f"{familiar(repo)[0]}@{digest}"
    repo, tag = familiar(name)
    return f"{repo}:{tag}"


def created_at(epoch: float) -> str:
    """docker's CreatedAt: ``2024-05-01 10:00:00 +0000 UTC``."""
    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(epoch))


def no_such_image(name: str) -> NotFound:
    """Docker's 404 for NAME: "No such image: busybox:latest" (a reference made familiar)."""
    from sampan.oci.reference import parse_reference

    shown = name
    if not (len(name) >= 4 and all(c in "0123456789abcdef" for c in name.removeprefix("sha256:"))):
        try:
            shown = parse_reference(name).familiar_string()
        except InvalidArgument:
            pass
    return NotFound(f"No such image: {shown}")


def resolve(store: ImageStore, name: str) -> ImageRecord:
    """store.resolve(NAME), a miss being docker's message."""
    try:
        return store.resolve(name)
    except NotFound:
        raise no_such_image(name) from None


def image_inspect(store: ImageStore, record: ImageRecord) -> dict[str, Any]:
    """docker's ``image inspect`` document (GET /images/{name}/json)."""
    config = store.config_of(record).raw
    digests = [familiar_name(d) for d in record.repo_digests]
    doc: dict[str, Any] = {
        "Id": record.id,
        "RepoTags": [familiar_name(t) for t in record.tags],
        "RepoDigests": digests,
        "Parent": store.parent_of(record.id) or "",
        "Comment": _comment(config),
        "Created": config.get("created", ""),
        "Container": "",
        "ContainerConfig": {},
        "DockerVersion": config.get("docker_version", ""),
        "Author": config.get("author", ""),
        "Config": dict(config.get("config") or {}),
        "Architecture": config.get("architecture", ""),
        "Os": config.get("os", ""),
        "Size": record.size,
        "VirtualSize": record.size,
        "GraphDriver": {"Name": store.snapshots.driver, "Data": None},
        "RootFS": {"Type": "layers", "Layers": list(record.diff_ids)},
        "Metadata": {"LastTagTime": rfc3339(round(record.added * 1e9))},
    }
    if config.get("variant"):
        doc["Variant"] = config["variant"]
    return doc


def _comment(config: dict[str, Any]) -> str:
    history = config.get("history")
    if isinstance(history, list) and history and isinstance(history[-1], dict):
        return str(history[-1].get("comment", ""))
    return ""


def _labels(store: ImageStore, record: ImageRecord) -> dict[str, str]:
    labels = _LABELS.get(record.id)
    if labels is None:
        found = store.config_of(record).container_config.get("Labels") or {}
        labels = found if isinstance(found, dict) else {}
        if len(_LABELS) >= _CACHE_LIMIT:
            _LABELS.clear()
        _LABELS[record.id] = labels
    return dict(labels)


def image_filter(
    store: ImageStore, wanted: dict[str, list[str]]
) -> Callable[[ImageRecord, str, str], bool]:
    """One predicate for docker's image filters: (record, familiar repo, tag) -> keep?

    WANTED maps a key (dangling, reference, before, since, label) to its
    values; keys are ANDed, values of one key ORed, as docker does.
    """
    for key in wanted:
        if key not in FILTER_KEYS:
            raise InvalidArgument(f"invalid filter '{key}'")
    for value in wanted.get("dangling", []):
        if value not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"invalid filter 'dangling={value}'")
    before = [resolve(store, v) for v in wanted.get("before", [])]
    since = [resolve(store, v) for v in wanted.get("since", [])]

    def keep(record: ImageRecord, repo: str, tag: str) -> bool:
        dangling = wanted.get("dangling")
        if dangling and (not record.tags) != (dangling[-1] in ("true", "1")):
            return False
        patterns = wanted.get("reference")
        if patterns:
            import fnmatch  # imports re: only when a pattern is given

            names = [repo, f"{repo}:{tag}"] if repo != NONE else []
            if not any(fnmatch.fnmatchcase(n, p) for n in names for p in patterns):
                return False
        if any(record.added >= b.added for b in before):
            return False
        if any(record.added <= s.added for s in since):
            return False
        for label in wanted.get("label", []):
            key, eq, value = label.partition("=")
            labels = _labels(store, record)
            if key not in labels or (eq and labels[key] != value):
                return False
        return True

    return keep


# -- the service ---------------------------------------------------------------------


class ImageService:
    """The image endpoints' work, on the calling thread's store of ENGINE."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def store(self) -> ImageStore:
        return self.engine.store()

    def resolve(self, name: str) -> ImageRecord:
        return resolve(self.store, name)

    # -- reading ------------------------------------------------------------------

    def summary(
        self, record: ImageRecord, *, containers: int = -1, shared: int = -1
    ) -> dict[str, Any]:
        """docker's ImageSummary of RECORD."""
        return {
            "Id": record.id,
            "ParentId": self.store.parent_of(record.id) or "",
            "RepoTags": [familiar_name(t) for t in record.tags],
            "RepoDigests": [familiar_name(d) for d in record.repo_digests],
            "Created": int(parse_rfc3339(record.created)),
            "Size": record.size,
            "SharedSize": shared,
            "VirtualSize": record.size,
            "Labels": _labels(self.store, record),
            "Containers": containers,
        }

    def list_images(
        self, *, filters: dict[str, list[str]] | None = None, all_: bool = False
    ) -> list[dict[str, Any]]:
        """GET /images/json: newest first; an image shown if any of its names passes; a
        build's intermediate images (untagged, with a child) only with ALL_.

        With a reference filter, only the names that match are listed (as dockerd
        does), so ``docker images busybox`` shows no other repository's rows.
        """
        store = self.store
        filters = filters or {}
        keep = image_filter(store, filters)
        records = sorted(
            store.list(), key=lambda r: (parse_rfc3339(r.created), r.added), reverse=True
        )
        hidden = set() if all_ else store.intermediates()
        out = []
        for record in records:
            if record.id in hidden:
                continue
            tags = [(t, *familiar(t)) for t in record.tags]
            digests = [(d, familiar(d.partition("@")[0])[0]) for d in record.repo_digests]
            names = [(repo, tag) for _, repo, tag in tags] or [(repo, NONE) for _, repo in digests]
            if not any(keep(record, repo, tag) for repo, tag in names or [(NONE, NONE)]):
                continue
            summary = self.summary(record)
            if filters.get("reference"):
                kept_tags = [t for t, repo, tag in tags if keep(record, repo, tag)]
                repos = {repo for repo, tag in names if keep(record, repo, tag)}
                summary["RepoTags"] = [familiar_name(t) for t in kept_tags]
                summary["RepoDigests"] = [familiar_name(d) for d, repo in digests if repo in repos]
            out.append(summary)
        return out

    def inspect(self, name: str) -> dict[str, Any]:
        return image_inspect(self.store, self.resolve(name))

    def history(self, name: str) -> list[dict[str, Any]]:
        """GET /images/{name}/history: newest layer first, as docker lists it."""
        store = self.store
        record = self.resolve(name)
        sizes = [store.snapshots.size(c) for c in record.chain]
        rows: list[dict[str, Any]] = []
        layer = 0
        for entry in store.config_of(record).history:
            size = 0
            if not entry.get("empty_layer"):
                size = sizes[layer] if layer < len(sizes) else 0
                layer += 1
            rows.append(
                {
                    "Id": "<missing>",
                    "Created": int(parse_rfc3339(str(entry.get("created", "")))),
                    "CreatedBy": str(entry.get("created_by", "")),
                    "Tags": None,
                    "Size": size,
                    "Comment": str(entry.get("comment", "")),
                }
            )
        # A built image's steps are its parents: each names the rows up to its own.
        image: ImageRecord | None = record
        while image is not None:
            count = len(store.config_of(image).history)
            if 0 < count <= len(rows) and rows[count - 1]["Id"] == "<missing>":
                rows[count - 1]["Id"] = image.id
                rows[count - 1]["Tags"] = [familiar_name(t) for t in image.tags] or None
            parent = store.parent_of(image.id)
            try:
                image = store.get(parent) if parent else None
            except NotFound:
                image = None
        rows.reverse()
        return rows

    def disk_usage(self) -> dict[str, Any]:
        """GET /system/df: images with their users and shared bytes (api/system.py adds the
        containers)."""
        store = self.store
        records = store.list()
        sizes = {c: store.snapshots.size(c) for c in store.snapshots.list()}
        uses: dict[str, int] = {}
        for record in records:
            for chain_id in set(record.chain):
                uses[chain_id] = uses.get(chain_id, 0) + 1
        images = []
        for record in records:
            shared = sum(sizes.get(c, 0) for c in set(record.chain) if uses[c] > 1)
            containers = len(store.users(record.id))
            images.append(self.summary(record, containers=containers, shared=shared))
        return {
            "LayersSize": sum(sizes.values()),
            "Images": images,
            "Containers": [],
            "Volumes": [],
            "BuildCache": [],
        }

    # -- names and removal --------------------------------------------------------

    def tag(self, name: str, repo: str, tag: str) -> str:
        """POST /images/{name}/tag: REPO[:TAG] (TAG "" is latest) names NAME's image."""
        if not repo:
            raise InvalidArgument("repo: required")
        target = f"{repo}:{tag}" if tag else repo
        self.resolve(name)
        return str(self.store.tag(name, target))

    def remove(self, name: str, *, force: bool = False) -> list[dict[str, str]]:
        """DELETE /images/{name}: [{"Untagged": ...}, ..., {"Deleted": ...}]."""
        self.resolve(name)
        return _removal_items(self.store.remove(name, force=force))

    def prune(self, filters: dict[str, list[str]] | None = None) -> dict[str, Any]:
        """POST /images/prune: dangling images (dangling=false: every unused one)."""
        filters = filters or {}
        for key in filters:
            if key != "dangling":
                raise InvalidArgument(f"invalid filter '{key}' (image prune supports dangling)")
        dangling = filters.get("dangling", ["true"])[-1]
        if dangling not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"invalid filter 'dangling={dangling}'")
        removal = self.store.prune(all_unused=dangling in ("false", "0"))
        items = _removal_items(removal)
        return {"ImagesDeleted": items or None, "SpaceReclaimed": removal.reclaimed}

    # -- registries ---------------------------------------------------------------

    def _client(self, domain: str, auth: Credentials | None) -> RegistryClient:
        from sampan.image.registry.client import RegistryClient, registry_host

        creds = {registry_host(domain): auth} if auth is not None else {}
        config = self.engine.config
        return RegistryClient(
            domain,
            mirrors=config.registry_mirrors,
            insecure_registries=config.insecure_registries,
            credentials=creds,
        )

    def pull(
        self,
        image: str,
        tag: str = "",
        *,
        platform: str = "",
        auth: Credentials | None = None,
        progress: Progress | None = None,
    ) -> ImageRecord:
        """POST /images/create?fromImage=IMAGE&tag=TAG: TAG may be a digest; "" is latest."""
        from sampan.image.registry.pull import pull
        from sampan.oci.image import parse_platform
        from sampan.oci.reference import parse_reference

        if not image:
            raise InvalidArgument("fromImage: required")
        ref = parse_reference(image)
        if tag:
            if tag.startswith("sha256:"):
                ref = ref.repository().with_digest(tag)
            else:
                ref = parse_reference(image, default_tag=False).with_tag(tag)
        from sampan.image.registry.errors import Unauthorized

        wanted = parse_platform(platform) if platform else None
        try:
            with self._client(ref.domain, auth) as client:
                return pull(self.store, ref, platform=wanted, progress=progress, client=client)
        except Unauthorized as exc:
            # dockerd's words and class: a 401 would make the docker CLI prompt for a login
            repo = ref.repository().familiar()
            raise NotFound(
                f"pull access denied for {repo}, repository does not exist or may require "
                f"'docker login': {exc}"
            ) from None

    def push(
        self,
        name: str,
        tag: str = "",
        *,
        auth: Credentials | None = None,
        progress: Progress | None = None,
    ) -> str:
        """POST /images/{name}/push?tag=TAG: returns the manifest digest."""
        from sampan.image.registry.push import push
        from sampan.oci.reference import parse_reference

        ref = parse_reference(name, default_tag=False)
        if ref.digest is not None:
            raise InvalidArgument(f"push {name}: push a tag, not a digest")
        ref = ref.with_tag(tag or ref.tag or "latest")
        try:
            self.store.resolve(str(ref))
        except NotFound:
            raise NotFound(
                f"An image does not exist locally with the tag: {ref.repository().familiar()}"
            ) from None
        with self._client(ref.domain, auth) as client:
            return push(self.store, ref, progress=progress, client=client)

    def check_login(self, server: str, auth: Credentials) -> None:
        """POST /auth: AUTH accepted by SERVER's registry, or Unauthorized."""
        with self._client(server, auth) as client:
            client.check_login()

    # -- archives -----------------------------------------------------------------

    def load(self, stream: BinaryIO, *, platform: str = "") -> list[str]:
        """POST /images/load: docker's lines, "Loaded image: NAME" or "Loaded image ID: ID"."""
        from sampan.image import archive
        from sampan.oci.image import parse_platform

        wanted = parse_platform(platform) if platform else None
        names = archive.load(self.store, stream, platform=wanted)
        return [
            f"Loaded image ID: {n}" if n.startswith("sha256:") else f"Loaded image: {n}"
            for n in names
        ]

    def check_save(self, names: list[str]) -> None:
        """Every name of a save resolves (before a byte of the tarball is sent)."""
        if not names:
            raise InvalidArgument("names: at least one image is required")
        for name in names:
            self.resolve(name)

    def save(self, names: list[str], out: BinaryIO) -> None:
        """GET /images/get: the tarball (a docker-archive and an OCI layout) into OUT."""
        from sampan.image import archive

        archive.save(self.store, names, out)

    def import_(
        self,
        stream: BinaryIO,
        *,
        repo: str = "",
        tag: str = "",
        changes: list[str] | None = None,
        message: str = "",
        platform: str = "",
    ) -> str:
        """POST /images/create?fromSrc=-: the body as a one-layer image; returns its id."""
        from sampan.image import archive
        from sampan.oci.image import parse_platform

        ref = None
        if repo:
            ref = f"{repo}:{tag}" if tag else repo
        return archive.import_rootfs(
            self.store,
            stream,
            changes=changes or [],
            ref=ref,
            message=message,
            platform=parse_platform(platform) if platform else None,
        )


def _removal_items(removal: Removal) -> list[dict[str, str]]:
    items = [{"Untagged": familiar_name(n)} for n in removal.untagged]
    items += [{"Deleted": image_id} for image_id in removal.deleted]
    return items
