"""One Dockerfile instruction applied to a stage's state: the image it makes.

A stage's ``State`` is its current image (None on ``FROM scratch`` until a
step makes one), the image's ``config`` section as docker records it (Env,
Cmd, Entrypoint, WorkingDir, User, ExposedPorts, Volumes, Labels, OnBuild,
Shell, Healthcheck, StopSignal) and the build arguments in effect.

Every instruction makes an image, as docker's classic builder does: the
metadata instructions (ENV, LABEL, CMD, ...) one with the parent's layers
and a history entry marked ``empty_layer``; RUN, COPY, ADD and a WORKDIR
that has to make its directory one with a new layer (sampan/build/
containers.py does the container work).  Each image is found first in the
build cache under the step's key -- sha256 of the parent image id (a config
digest: Env, User, WorkingDir ... are in it), the instruction with its
arguments expanded, and for COPY/ADD the content of what is copied -- so an
unchanged rebuild makes nothing and an unchanged step after a changed one
is made again (its parent changed).

    state = State(image=record, config=..., args={})
    step = Step(build, stage_state, instruction)
    apply(step)        # state.image is the step's image
"""

from __future__ import annotations

import hashlib

from sampan import _json
from sampan.build.dockerfile import DockerfileError, parse_kv
from sampan.build.shell_lex import expand, expand_words
from sampan.errors import InvalidArgument, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sampan.build.builder import Build
    from sampan.build.dockerfile import Instruction
    from sampan.image.store import ImageRecord

__all__ = ["DEFAULT_PATH", "PROXY_ARGS", "State", "Step", "apply", "config_of"]

PROXY_ARGS = frozenset(
    ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
     "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
)  # fmt: skip
_DEFAULT_SHELL = ["/bin/sh", "-c"]
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def config_of(raw: dict[str, Any]) -> dict[str, Any]:
    """The ``config`` section of an image config document, as a fresh dict."""
    import copy

    return copy.deepcopy(raw.get("config") or {})


class State:
    """A stage being built: its image, config and build arguments."""

    def __init__(
        self, name: str, index: int, image: ImageRecord | None, config: dict[str, Any]
    ) -> None:
        self.name = name
        self.index = index
        self.image = image
        self.config = config
        self.args: dict[str, str] = {}  # declared ARGs in effect (with their values)
        self.cmd_set = False  # a CMD of this stage (an ENTRYPOINT then keeps it)

    @property
    def env(self) -> dict[str, str]:
        out = {}
        for item in self.config.get("Env") or []:
            key, _, value = item.partition("=")
            out[key] = value
        return out

    def lookup(self) -> dict[str, str]:
        """What ``$NAME`` expands to in an instruction: ARGs, then ENV over them."""
        return {**self.args, **self.env}

    @property
    def shell(self) -> list[str]:
        return list(self.config.get("Shell") or _DEFAULT_SHELL)

    @property
    def workdir(self) -> str:
        return str(self.config.get("WorkingDir") or "/")


class Step:
    """One instruction of one stage, with what it needs from the build."""

    def __init__(
        self,
        build: Build,
        state: State,
        inst: Instruction,
        escape: str,
        emit: Callable[[dict[str, Any]], None],
    ) -> None:
        self.build = build
        self.state = state
        self.inst = inst
        self.escape = escape
        self.emit = emit
        self.flags = _flags(inst)

    def error(self, message: str) -> InvalidArgument:
        return InvalidArgument(f"{self.build.file}:{self.inst.line}: {message}")

    def expand(self, word: str) -> str:
        try:
            return expand(word, self.state.lookup(), self.escape)
        except DockerfileError:
            raise
        except InvalidArgument as exc:
            raise self.error(str(exc)) from None

    def expand_heredoc(self, text: str) -> str:
        """A heredoc's content with $VAR expanded (an unquoted marker), quotes kept."""
        out = []
        for line in text.split("\n"):
            out.append(self.expand(line.replace("\\", "\\\\").replace('"', '\\"')
                                   .replace("'", "\\'")) if "$" in line else line)  # fmt: skip
        return "\n".join(out)

    def words(self) -> list[str]:
        out: list[str] = []
        for arg in self.inst.args:
            out += self._split(arg)
        return out

    def _split(self, text: str) -> list[str]:
        try:
            return expand_words(text, self.state.lookup(), self.escape)
        except DockerfileError:
            raise
        except InvalidArgument as exc:
            raise self.error(str(exc)) from None

    def key(self, *parts: object) -> str:
        """The cache key of this step made from the current image with PARTS."""
        parent = self.state.image.id if self.state.image is not None else "scratch"
        doc = _json.dumps([parent, self.inst.keyword, *parts])
        return "sha256:" + hashlib.sha256(doc.encode()).hexdigest()

    def commit(self, key: str, entry: dict[str, Any], make: Callable[[], ImageRecord]) -> None:
        """The step's image: from the cache under KEY, else MAKE (and remembered)."""
        self.build.commit_step(self, key, entry, make)

    def metadata(self, description: str, *key_parts: object) -> None:
        """A step that changes only the config: an image with no new layer."""
        from sampan.engine.image_steps import child_image

        state = self.state
        entry = {"created_by": "/bin/sh -c #(nop)  " + description}
        key = self.key(description, state.config, *key_parts)
        store = self.build.store

        def make() -> ImageRecord:
            return child_image(store, state.image, state.config, entry, None)

        self.commit(key, entry, make)

    def args_prefix(self) -> str:
        """docker's "|N a=b c=d " before a RUN's command in the history (no proxy args)."""
        used = [f"{k}={v}" for k, v in sorted(self.state.args.items()) if k not in PROXY_ARGS]
        return f"|{len(used)} {' '.join(used)} " if used else ""


def _flags(inst: Instruction) -> dict[str, str]:
    out: dict[str, str] = {}
    for flag in inst.flags:
        name, eq, value = flag[2:].partition("=")
        out.setdefault(name, value if eq else "true")
        if name == "mount":
            out[f"mount#{len(out)}"] = value
    return out


# -- the instructions ----------------------------------------------------------------


def apply(step: Step) -> None:
    handler = _HANDLERS.get(step.inst.keyword)
    if handler is None:
        raise step.error(f"unknown instruction: {step.inst.keyword.upper()}")
    handler(step)


def _env(step: Step) -> None:
    pairs = [(k, step.expand(v)) for k, v in parse_kv(step.inst)]
    env = list(step.state.config.get("Env") or [])
    for key, value in pairs:
        if not key:
            raise step.error("ENV names can not be blank")
        env = [e for e in env if e.partition("=")[0] != key] + [f"{key}={value}"]
    step.state.config["Env"] = env
    step.metadata("ENV " + " ".join(f"{k}={v}" for k, v in pairs))


def _label(step: Step) -> None:
    pairs = [(step.expand(k), step.expand(v)) for k, v in parse_kv(step.inst)]
    labels = dict(step.state.config.get("Labels") or {})
    for key, value in pairs:
        if not key:
            raise step.error("LABEL names can not be blank")
        labels[key] = value
    step.state.config["Labels"] = labels
    step.metadata("LABEL " + " ".join(f"{k}={v}" for k, v in pairs))


def _arg(step: Step) -> None:
    for name, default in parse_kv(step.inst):
        value = step.build.options.build_args.get(name)
        step.build.consumed.add(name)
        if value is None:
            if default is None or (default == "" and "=" not in step.inst.original):
                value = step.build.global_value(name)
            else:
                value = step.expand(default)
        if value is not None:
            step.state.args[name] = value
        else:
            step.state.args.pop(name, None)
    shown = " ".join(k for k, _ in parse_kv(step.inst))
    step.metadata("ARG " + shown, sorted(step.state.args.items()))


def _expose(step: Step) -> None:
    ports = dict(step.state.config.get("ExposedPorts") or {})
    added = []
    for word in step.words():
        port, slash, proto = word.partition("/")
        proto = proto.lower() if slash else "tcp"
        low, dash, high = port.partition("-")
        if (
            not low.isdigit()
            or (dash and not high.isdigit())
            or proto not in ("tcp", "udp", "sctp")
        ):
            raise step.error(f"EXPOSE: invalid port {word!r}")  # fmt: skip
        first, last = int(low), int(high) if dash else int(low)
        if not 0 < first <= last <= 65535:
            raise step.error(f"EXPOSE: invalid port {word!r}")
        for p in range(first, last + 1):
            ports[f"{p}/{proto}"] = {}
            added.append(f"{p}/{proto}")
    step.state.config["ExposedPorts"] = ports
    step.metadata("EXPOSE " + " ".join(sorted(set(added))))


def _volume(step: Step) -> None:
    paths = list(step.inst.args) if step.inst.json else step.words()
    if step.inst.json:
        paths = [step.expand(p) for p in paths]
    volumes = dict(step.state.config.get("Volumes") or {})
    for path in paths:
        path = path.strip()
        if not path:
            raise step.error("VOLUME specified can not be an empty string")
        volumes[path] = {}
    step.state.config["Volumes"] = volumes
    step.metadata(f"VOLUME [{' '.join(paths)}]")


def _user(step: Step) -> None:
    user = step.expand(step.inst.args[0]) if step.inst.args else ""
    if len(step.words()) != 1:
        raise step.error("USER requires exactly one argument")
    step.state.config["User"] = user
    step.metadata(f"USER {user}")


def _stopsignal(step: Step) -> None:
    words = step.words()
    if len(words) != 1:
        raise step.error("STOPSIGNAL requires exactly one argument")
    signal = words[0]
    from sampan.linux.constants import parse_signal

    try:
        parse_signal(signal)
    except (ValueError, InvalidArgument):
        raise step.error(f"STOPSIGNAL: invalid signal {signal!r}") from None
    step.state.config["StopSignal"] = signal
    step.metadata(f"STOPSIGNAL {signal}")


def _command(step: Step, field: str) -> list[str]:
    inst = step.inst
    if inst.json:
        return list(inst.args)
    text = inst.args[0] if inst.args else ""
    return [*step.state.shell, text]


def _cmd(step: Step) -> None:
    cmd = _command(step, "Cmd")
    step.state.config["Cmd"] = cmd
    step.state.cmd_set = True
    if not step.inst.json:
        step.state.config["ArgsEscaped"] = True
    step.metadata(f"CMD {_go_list(cmd)}")


def _entrypoint(step: Step) -> None:
    entry = _command(step, "Entrypoint")
    config = step.state.config
    config["Entrypoint"] = entry if (step.inst.json or entry[-1]) else None
    if not step.state.cmd_set:
        config["Cmd"] = None  # an ENTRYPOINT resets the base image's CMD
    if not step.inst.json:
        config["ArgsEscaped"] = True
    step.metadata(f"ENTRYPOINT {_go_list(entry)}")


def _shell(step: Step) -> None:
    if not step.inst.json:
        raise step.error("SHELL requires the arguments to be in JSON form")
    if not step.inst.args:
        raise step.error("SHELL requires at least one argument")
    step.state.config["Shell"] = list(step.inst.args)
    step.metadata(f"SHELL {_go_list(step.inst.args)}")


def _onbuild(step: Step) -> None:
    text = step.inst.original.split(None, 1)[1] if " " in step.inst.original else ""
    trigger = text.strip()
    keyword = trigger.split(None, 1)[0].upper() if trigger else ""
    if keyword in ("ONBUILD", "FROM", "MAINTAINER"):
        raise step.error(f"{keyword} isn't allowed as an ONBUILD trigger")
    step.state.config["OnBuild"] = [*(step.state.config.get("OnBuild") or []), trigger]
    step.metadata(f"ONBUILD {trigger}")


def _maintainer(step: Step) -> None:
    step.metadata(f"MAINTAINER {' '.join(step.inst.args)}")


_DURATIONS = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod",
              "start-interval": "StartInterval"}  # fmt: skip


def _healthcheck(step: Step) -> None:
    from sampan.units import parse_duration

    inst = step.inst
    words = inst.args
    check: dict[str, Any] = {}
    if not inst.json and words and words[0].strip().upper() == "NONE":
        if len(words[0].split()) > 1 or step.flags:
            raise step.error("HEALTHCHECK NONE takes no arguments")
        step.state.config["Healthcheck"] = {"Test": ["NONE"]}
        step.metadata("HEALTHCHECK NONE")
        return
    for name, value in step.flags.items():
        if name in _DURATIONS:
            try:
                ns = parse_duration(value)
            except (ValueError, InvalidArgument):
                raise step.error(f"HEALTHCHECK --{name}: invalid duration {value!r}") from None
            if ns < 0 or 0 < ns < 1_000_000:
                raise step.error(f"HEALTHCHECK --{name} cannot be less than 1ms")
            check[_DURATIONS[name]] = ns
        elif name == "retries":
            if not value.isdigit():
                raise step.error(f"HEALTHCHECK --retries: invalid number {value!r}")
            check["Retries"] = int(value)
        else:
            raise step.error(f"HEALTHCHECK: unknown flag --{name}")
    cmd_inst = getattr(inst, "inner", None)
    if inst.json:
        test = ["CMD", *inst.args]
    elif cmd_inst is not None:
        test = ["CMD", *cmd_inst.args] if cmd_inst.json else ["CMD-SHELL", cmd_inst.args[0]]
    else:
        text = words[0] if words else ""
        head, _, rest = text.strip().partition(" ")
        if head.upper() != "CMD" or not rest.strip():
            raise step.error("HEALTHCHECK: expected CMD or NONE")
        rest = rest.strip()
        if rest.startswith("["):
            try:
                items = _json.loads(rest)
            except ValueError:
                items = None
            if isinstance(items, list) and all(isinstance(i, str) for i in items):
                test = ["CMD", *items]
            else:
                test = ["CMD-SHELL", rest]
        else:
            test = ["CMD-SHELL", rest]
    step.state.config["Healthcheck"] = {"Test": test, **check}
    step.metadata(f"HEALTHCHECK {_go_list(test)}")


def _workdir(step: Step) -> None:
    import posixpath

    words = step.words()
    if len(words) != 1:
        raise step.error("WORKDIR requires exactly one argument")
    path = words[0]
    path = posixpath.normpath(posixpath.join(step.state.workdir, path))
    if path.startswith("//"):
        path = path[1:]
    step.state.config["WorkingDir"] = path
    from sampan.build import containers

    containers.workdir(step, path)


def _run(step: Step) -> None:
    from sampan.build import containers

    containers.run(step)


def _copy(step: Step) -> None:
    from sampan.build import containers

    containers.copy(step, add=step.inst.keyword == "add")


def _go_list(items: list[str]) -> str:
    """A list as docker's history prints it (Go's %q of a []string)."""
    return "[" + " ".join(_json.dumps(i) for i in items) + "]"


def _unsupported(name: str) -> Callable[[Step], None]:
    def handler(step: Step) -> None:
        raise Unsupported(f"{step.build.file}:{step.inst.line}: {name} is not supported")

    return handler


_HANDLERS: dict[str, Callable[[Step], None]] = {
    "env": _env,
    "label": _label,
    "arg": _arg,
    "expose": _expose,
    "volume": _volume,
    "user": _user,
    "stopsignal": _stopsignal,
    "cmd": _cmd,
    "entrypoint": _entrypoint,
    "shell": _shell,
    "onbuild": _onbuild,
    "maintainer": _maintainer,
    "healthcheck": _healthcheck,
    "workdir": _workdir,
    "run": _run,
    "copy": _copy,
    "add": _copy,
}
