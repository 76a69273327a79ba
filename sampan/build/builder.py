"""A Dockerfile build, run by the daemon: stages, their order, the output stream, the tags.

``build`` reads the Dockerfile from the extracted context, parses it,
picks the target stage (``--target``, else the last) and the stages it needs
-- its FROM naming an earlier stage, ``COPY --from``, ``RUN --mount from=``
-- and builds only those, each in a thread of its own once the stages it
needs are done, so independent stages build in parallel.  The stream stays
docker's classic builder's: the messages of one stage are emitted in stage
order (the first stage's live, a later one's as soon as the ones before it
are done), numbered ``Step N/M`` over the instructions of the stages built.

Each instruction is ``steps.apply``'d: it makes an image, found first in the
build cache (``ImageStore.cached``); a build's images are recorded with
their parent, so ``images`` hides them and ``history`` names them.  The
final image is tagged only when every stage succeeded; a failure leaves the
images of the steps that worked (the cache of the next try) and no tag.

    image_id = build(engine, "/var/lib/sampan/tmp/build-x", BuildOptions(tags=["app"]), emit)
"""

from __future__ import annotations

import threading

from sampan.build import steps
from sampan.build.dockerfile import DockerfileError, parse
from sampan.build.shell_lex import expand
from sampan.errors import InvalidArgument, NotFound, SampanError, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sampan.build.dockerfile import Dockerfile, Instruction, Stage
    from sampan.engine.daemon import Engine
    from sampan.image.store import ImageRecord

    Emit = Callable[[dict[str, Any]], None]

__all__ = ["BuildFailed", "BuildOptions", "build", "prune"]


class BuildOptions:
    """What POST /build asks for (see sampan/api/build.py)."""

    def __init__(
        self,
        *,
        dockerfile: str = "Dockerfile",
        tags: list[str] | None = None,
        build_args: dict[str, str | None] | None = None,
        labels: dict[str, str] | None = None,
        target: str = "",
        no_cache: bool = False,
        pull: bool = False,
        cache_from: list[str] | None = None,
        network: str = "default",
        quiet: bool = False,
        platform: str = "",
        rm: bool = True,
        force_rm: bool = False,
    ) -> None:
        self.dockerfile = dockerfile
        self.tags = list(tags or [])
        self.build_args = dict(build_args or {})
        self.labels = dict(labels or {})
        self.target = target
        self.no_cache = no_cache
        self.pull = pull
        self.cache_from = list(cache_from or [])
        self.network = network
        self.quiet = quiet
        self.platform = platform
        self.rm = rm
        self.force_rm = force_rm


class BuildFailed(InvalidArgument):
    """A RUN that exited non-zero: CODE is its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class _Cancelled(Exception):
    """Another stage failed: this one stops between steps."""


class Build:
    """One build's state, shared by its stages' threads."""

    def __init__(self, engine: Engine, ctx: str, options: BuildOptions, file: str) -> None:
        self.engine = engine
        self.ctx = ctx
        self.options = options
        self.file = file
        self.store = engine.store()
        self.consumed: set[str] = set()
        self.global_args: dict[str, str] = {}
        self.results: dict[int, ImageRecord | None] = {}
        self.configs: dict[int, dict[str, Any]] = {}
        self.failed = threading.Event()
        self.target = 0
        self.df: Dockerfile | None = None
        self.cache_from: list[ImageRecord] = []
        self._lock = threading.Lock()
        self._scratch: ImageRecord | None = None

    # -- what steps ask for ---------------------------------------------------------

    def global_value(self, name: str) -> str | None:
        """The value of the global ARG NAME (before the first FROM), if one is declared."""
        return self.global_args.get(name)

    def scratch_base(self) -> dict[str, Any]:
        from sampan.engine.image_steps import scratch_config

        return scratch_config()

    def scratch_image(self) -> ImageRecord:
        """An image with no layers and no history: what a container of a scratch stage's
        first RUN/COPY is made from."""
        from sampan.engine.image_steps import child_image

        with self._lock:
            if self._scratch is None:
                key = "scratch"
                found = self.store.cached(key)
                record = self._get(found) if found else None
                if record is None:
                    record = child_image(self.store, None, {}, None, None)
                    self.store.remember(key, record.id)
                self._scratch = record
            return self._scratch

    def _get(self, image_id: str) -> ImageRecord | None:
        try:
            return self.store.get(image_id)
        except NotFound:
            return None

    def commit_step(
        self, step: steps.Step, key: str, entry: dict[str, Any], make: Callable[[], ImageRecord]
    ) -> None:
        """STEP's image from the cache under KEY, else made by MAKE and remembered."""
        if self.failed.is_set():
            raise _Cancelled()
        emit = step.emit
        record = None
        if not self.options.no_cache:
            found = self.store.cached(key)
            record = self._get(found) if found else None
            if record is not None:
                emit({"stream": " ---> Using cache\n"})
            if record is None and self.cache_from:
                record = self._from_cache_images(step, entry)
                if record is not None:
                    emit({"stream": " ---> Using cache\n"})
        if record is None:
            record = make()
        self.store.remember(key, record.id)
        step.state.image = record
        emit({"stream": f" ---> {record.id.removeprefix('sha256:')[:12]}\n"})

    def _from_cache_images(self, step: steps.Step, entry: dict[str, Any]) -> ImageRecord | None:
        """--cache-from: an image whose history continues the step's parent's with this
        step (the same ``created_by``, the same layers before it) gives the step's image:
        the parent plus that image's next layer, without running anything."""
        from sampan.engine.image_steps import Layer, child_image
        from sampan.oci import image as oi

        store = self.store
        parent = step.state.image
        parent_raw = store.config_of(parent).raw if parent is not None else self.scratch_base()
        history = [h.get("created_by") for h in parent_raw.get("history") or []]
        diff_ids = list((parent_raw.get("rootfs") or {}).get("diff_ids") or [])
        for source in self.cache_from:
            config = store.config_of(source)
            theirs = config.history
            if len(theirs) <= len(history) or config.diff_ids[: len(diff_ids)] != diff_ids:
                continue
            if [h.get("created_by") for h in theirs[: len(history)]] != history:
                continue
            found = theirs[len(history)]
            if found.get("created_by") != entry["created_by"]:
                continue
            layer = None
            if not found.get("empty_layer"):
                if len(config.diff_ids) <= len(diff_ids):
                    continue
                blob = store.manifest(source).layers[len(diff_ids)]
                gzip = blob.media_type in (oi.DOCKER_LAYER_GZIP, oi.OCI_LAYER_GZIP)
                if not gzip and blob.media_type not in (oi.DOCKER_LAYER, oi.OCI_LAYER):
                    continue
                layer = Layer(config.diff_ids[len(diff_ids)], blob.digest, blob.size, gzip)
            made = {k: v for k, v in found.items() if k not in ("created", "empty_layer")}
            return child_image(store, parent, step.state.config, made, layer)
        return None

    def resolve_image(self, name: str, line: int) -> ImageRecord:
        """An image by NAME (FROM, COPY --from): from the store, pulled when missing or
        with --pull."""
        from sampan.engine.images import resolve

        if not self.options.pull:
            try:
                return resolve(self.store, name)
            except NotFound:
                pass
        try:
            return self.engine.images.pull(name, platform=self.options.platform)
        except SampanError as exc:
            raise type(exc)(f"{self.file}:{line}: {name}: {exc}") from None


def _stage_index(df: Dockerfile, name: str, before: int) -> int | None:
    """The stage NAME (a name or an index) refers to, if an earlier one."""
    lowered = name.lower()
    for stage in df.stages[:before]:
        if stage.name and stage.name == lowered:
            return stage.index
    if name.isdigit() and int(name) < before:
        return int(name)
    return None


def _base_name(build: Build, stage: Stage) -> str:
    inst = stage.from_
    try:
        return expand(inst.args[0], build.global_args, "\\").strip()
    except InvalidArgument as exc:
        raise InvalidArgument(f"{build.file}:{inst.line}: {exc}") from None


def _flag(inst: Instruction, name: str) -> str | None:
    for flag in inst.flags:
        key, eq, value = flag[2:].partition("=")
        if key == name:
            return value if eq else "true"
    return None


def _mount_froms(inst: Instruction) -> list[str]:
    out = []
    for flag in inst.flags:
        key, _, value = flag[2:].partition("=")
        if key != "mount":
            continue
        for part in value.split(","):
            k, _, v = part.partition("=")
            if k.strip() == "from" and v:
                out.append(v.strip())
    return out


def _dependencies(build: Build, df: Dockerfile) -> dict[int, set[int]]:
    deps: dict[int, set[int]] = {}
    for stage in df.stages:
        needs: set[int] = set()
        found = _stage_index(df, _base_name(build, stage), stage.index)
        if found is not None:
            needs.add(found)
        for inst in stage.instructions:
            names = _mount_froms(inst) if inst.keyword == "run" else []
            if inst.keyword in ("copy", "add"):
                source = _flag(inst, "from")
                if source:
                    names.append(source)
            for name in names:
                found = _stage_index(df, name, stage.index)
                if found is not None:
                    needs.add(found)
                elif name.isdigit():
                    raise InvalidArgument(
                        f"{build.file}:{inst.line}: stage {name} is not an earlier stage"
                    )
        deps[stage.index] = needs
    return deps


def _needed(deps: dict[int, set[int]], target: int) -> list[int]:
    seen: set[int] = set()
    todo = [target]
    while todo:
        i = todo.pop()
        if i not in seen:
            seen.add(i)
            todo.extend(deps[i])
    return sorted(seen)


def _global_args(build: Build, df: Dockerfile) -> None:
    from sampan.build.dockerfile import parse_kv

    for inst in df.global_args:
        for name, default in parse_kv(inst):
            build.consumed.add(name)
            given = build.options.build_args.get(name)
            if given is not None:
                build.global_args[name] = given
            elif default is not None and ("=" in inst.original or default):
                try:
                    build.global_args[name] = expand(default, build.global_args, df.escape)
                except InvalidArgument as exc:
                    raise InvalidArgument(f"{build.file}:{inst.line}: {exc}") from None


# -- a stage ----------------------------------------------------------------------------


def _run_stage(
    build: Build, df: Dockerfile, stage: Stage, numbers: dict[int, int], total: int, emit: Emit
) -> None:
    from sampan.build.dockerfile import parse as parse_text

    inst = stage.from_
    emit({"stream": f"Step {numbers[id(inst)]}/{total} : {inst.original}\n"})
    platform = _flag(inst, "platform")
    if platform:
        _check_platform(build, expand(platform, build.global_args, df.escape), inst.line)
    name = _base_name(build, stage)
    found = _stage_index(df, name, stage.index)
    if found is not None:
        image = build.results[found]
        config = steps.config_of({"config": build.configs[found]})
    elif name.lower() == "scratch":
        image, config = None, {}
    else:
        image = build.resolve_image(name, inst.line)
        config = steps.config_of(build.store.config_of(image).raw)
    if image is not None:
        emit({"stream": f" ---> {image.id.removeprefix('sha256:')[:12]}\n"})
    env = list(config.get("Env") or [])
    if not any(e.startswith("PATH=") for e in env):  # as docker's builder: a default PATH
        config["Env"] = [*env, steps.DEFAULT_PATH]
    state = steps.State(stage.name, stage.index, image, config)
    triggers = list(config.get("OnBuild") or [])
    if triggers:
        config["OnBuild"] = None
        emit({"stream": f"# Executing {len(triggers)} build trigger"
                        f"{'s' if len(triggers) > 1 else ''}\n"})  # fmt: skip
        for text in triggers:
            try:
                parsed = parse_text(f"FROM scratch\n{text}\n", build.file)
            except DockerfileError as exc:
                raise InvalidArgument(f"{build.file}:{inst.line}: ONBUILD trigger: {exc}") from None
            for trigger in parsed.stages[0].instructions:
                trigger.line = inst.line
                _apply(build, df, state, trigger, emit)
    for inst in stage.instructions:
        emit({"stream": f"Step {numbers[id(inst)]}/{total} : {inst.original}\n"})
        _apply(build, df, state, inst, emit)
    if stage.index == build.target and build.options.labels:
        _labels(build, df, state, emit, numbers, total)
    build.results[stage.index] = state.image
    build.configs[stage.index] = state.config


def _apply(build: Build, df: Dockerfile, state: steps.State, inst: Instruction, emit: Emit) -> None:
    step = steps.Step(build, state, inst, df.escape, emit)
    try:
        steps.apply(step)
    except (_Cancelled, DockerfileError, BuildFailed):
        raise
    except SampanError as exc:
        text = str(exc)
        if not text.startswith(f"{build.file}:"):
            raise type(exc)(f"{build.file}:{inst.line}: {text}") from None
        raise


def _labels(
    build: Build, df: Dockerfile, state: steps.State, emit: Emit, numbers: dict[int, int],
    total: int,
) -> None:  # fmt: skip
    """--label: one LABEL step after the target's instructions, as the classic builder adds."""
    import shlex

    text = "LABEL " + " ".join(
        f"{shlex.quote(k)}={shlex.quote(v)}" for k, v in sorted(build.options.labels.items())
    )
    parsed = parse(f"FROM scratch\n{text}\n", build.file)
    inst = parsed.stages[0].instructions[0]
    inst.line = 0
    emit({"stream": f"Step {total}/{total} : {text}\n"})
    _apply(build, df, state, inst, emit)


def _check_platform(build: Build, platform: str, line: int) -> None:
    from sampan.oci.image import host_platform, parse_platform

    try:
        wanted = parse_platform(platform)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{build.file}:{line}: --platform: {exc}") from None
    host = host_platform()
    if (wanted.os, wanted.architecture) != (host.os, host.architecture):
        raise Unsupported(
            f"{build.file}:{line}: --platform={platform}: only the host's platform "
            f"({host.os}/{host.architecture}) can be built here"
        )


# -- the build ------------------------------------------------------------------------


def build(engine: Engine, ctx: str, options: BuildOptions, emit: Emit) -> str:
    """Build the Dockerfile of the context extracted at CTX; the image id (see the module
    doc).  Raises with nothing tagged on any failure."""
    import queue

    from sampan.build.context import apply_dockerignore, read_dockerfile
    from sampan.engine.images import resolve

    shown, data = read_dockerfile(ctx, options.dockerfile)
    apply_dockerignore(ctx)  # read first: .dockerignore may exclude the Dockerfile itself
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise InvalidArgument(f"{shown}: not UTF-8 text") from None
    df = parse(text, shown)
    b = Build(engine, ctx, options, shown)
    b.df = df
    if options.platform:
        _check_platform(b, options.platform, 0)
    _global_args(b, df)
    for name in options.cache_from:
        try:
            b.cache_from.append(resolve(b.store, name))
        except NotFound:  # as docker: a cache source that is not here is only a warning
            emit({"stream": f"[Warning] cache source {name} not found: not used\n"})
    target = len(df.stages) - 1
    if options.target:
        found = _stage_index(df, options.target, len(df.stages))
        if found is None:
            raise InvalidArgument(f"failed to reach build target {options.target} in Dockerfile")
        target = found
    b.target = target
    deps = _dependencies(b, df)
    needed = _needed(deps, target)
    numbers: dict[int, int] = {}
    n = 0
    for i in needed:
        stage = df.stages[i]
        for inst in (stage.from_, *stage.instructions):
            n += 1
            numbers[id(inst)] = n
    total = n + (1 if options.labels else 0)

    queues: dict[int, queue.SimpleQueue[dict[str, Any] | None]] = {
        i: queue.SimpleQueue() for i in needed
    }
    done = {i: threading.Event() for i in needed}
    errors: dict[int, BaseException] = {}

    def worker(i: int) -> None:
        out = queues[i]
        try:
            for d in deps[i]:
                done[d].wait()
                if d in errors:
                    raise _Cancelled()
            _run_stage(b, df, df.stages[i], numbers, total, out.put)
        except BaseException as exc:
            errors[i] = exc
            b.failed.set()
        finally:
            done[i].set()
            out.put(None)
            engine.release_thread()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in needed]
    for t in threads:
        t.start()
    failure: BaseException | None = None
    try:
        for i in needed:
            while (msg := queues[i].get()) is not None:
                if failure is None:
                    emit(msg)
            if i in errors and failure is None and not isinstance(errors[i], _Cancelled):
                failure = errors[i]
                b.failed.set()
    finally:
        if failure is not None:
            b.failed.set()
        for t in threads:
            t.join()
    if failure is None:
        failure = next((e for e in errors.values() if not isinstance(e, _Cancelled)), None)
    if failure is not None:
        raise failure
    image = b.results[target]
    if image is None:
        raise InvalidArgument(f"{shown}: the target stage makes no image (FROM scratch only)")
    unused = sorted(set(options.build_args) - b.consumed - steps.PROXY_ARGS)
    if unused:
        emit({"stream": f"[Warning] One or more build-args [{' '.join(unused)}] were not "
                        "consumed\n"})  # fmt: skip
    emit({"aux": {"ID": image.id}})
    emit({"stream": f"Successfully built {image.id.removeprefix('sha256:')[:12]}\n"})
    _tag(engine, image, options.tags, emit)
    return image.id


def _tag(engine: Engine, image: ImageRecord, tags: list[str], emit: Emit) -> None:
    from sampan.engine.images import familiar_name
    from sampan.oci.reference import parse_reference

    refs = []
    for tag in tags:
        ref = parse_reference(tag)
        if ref.digest is not None:
            raise InvalidArgument(f"t: refusing to tag with a digest: {tag}")
        refs.append(ref)
    for ref in refs:
        engine.images.tag(image.id, ref.repository().name, ref.tag or "latest")
        emit({"stream": f"Successfully tagged {familiar_name(str(ref))}\n"})


def prune(
    engine: Engine, *, all: bool = False, filters: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """POST /build/prune: the build cache's keys, and the images builds left that nothing
    names or uses (``all``: their dangling results too)."""
    for key in filters or {}:
        raise InvalidArgument(f"invalid filter '{key}' (builder prune supports none here)")
    removal = engine.store().prune_build_cache(all_unused=all)
    return {"CachesDeleted": removal.deleted or None, "SpaceReclaimed": removal.reclaimed}
