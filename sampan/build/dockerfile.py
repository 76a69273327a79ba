"""The Dockerfile parser: text to stages of instructions, or an error at FILE:LINE:COL.

What it reads, with docker's rules:

- parser directives (``# syntax=``, ``# escape=`` with ``\\`` or a backtick,
  ``# check=``) only at the very top: the first line that is not one ends them;
- comments (a line whose first non-blank character is ``#``) and blank lines,
  also inside a continued instruction, where they are dropped;
- line continuations with the escape character at the end of a line;
- ``--name=value`` flags after the keyword, checked against the instruction's own;
- exec form (a JSON array of strings) where an instruction takes one, shell form
  otherwise (a ``[`` that does not parse as such an array is shell form);
- heredocs (``<<EOF``, ``<<-EOF`` stripping leading tabs, ``<<"EOF"`` not
  expanded), several on one line, for RUN, COPY and ADD;
- ``ARG`` before the first ``FROM`` (the global args), ``FROM image [AS name]``,
  ONBUILD and HEALTHCHECK's inner instructions.

Then the static check that an ARG is not used before its definition in its
stage.  Values stay unexpanded: the builder expands them with the build's
environment (sampan/build/shell_lex.py).

    df = parse(text, "Dockerfile")
    df.stages[-1].instructions[0].keyword   # "run"
"""

from __future__ import annotations

from sampan import _json
from sampan.build.shell_lex import references
from sampan.errors import InvalidArgument

__all__ = [
    "Dockerfile",
    "DockerfileError",
    "Heredoc",
    "Instruction",
    "Stage",
    "parse",
    "parse_kv",
    "split_raw",
]

KEYWORDS = frozenset(
    ("from", "run", "cmd", "label", "maintainer", "expose", "env", "add", "copy",
     "entrypoint", "volume", "user", "workdir", "arg", "onbuild", "stopsignal",
     "healthcheck", "shell")
)  # fmt: skip
_FLAGS = {
    "from": {"platform"},
    "run": {"mount", "network", "security"},
    "copy": {"from", "chown", "chmod", "link", "parents", "exclude"},
    "add": {"chown", "chmod", "link", "checksum", "keep-git-dir", "exclude"},
    "healthcheck": {"interval", "timeout", "start-period", "start-interval", "retries"},
}
_BOOL_FLAGS = {"link", "parents", "keep-git-dir"}
_EXEC_FORM = {"run", "cmd", "entrypoint", "shell", "volume", "copy", "add"}
_SHELL_TEXT = {"run", "cmd", "entrypoint", "shell", "healthcheck", "onbuild", "maintainer"}
_HEREDOC = {"run", "copy", "add"}
_DIRECTIVES = ("syntax", "escape", "check")


class DockerfileError(InvalidArgument):
    """A Dockerfile that cannot be built: the message names file, line and column."""

    def __init__(self, file: str, line: int, col: int, message: str) -> None:
        where = f"{file}:{line}:{col}" if col else f"{file}:{line}"
        super().__init__(f"{where}: {message}")
        self.line = line


class Heredoc:
    __slots__ = ("chomp", "content", "expand", "name")

    def __init__(self, name: str, content: str, expand: bool, chomp: bool) -> None:
        self.name = name
        self.content = content
        self.expand = expand
        self.chomp = chomp


class Instruction:
    """One instruction (see the module doc); ``rest`` is its text after the flags."""

    __slots__ = (
        "args", "end_line", "flags", "heredocs", "inner", "json", "keyword", "line",
        "original", "rest",
    )  # fmt: skip

    def __init__(self, keyword: str, original: str, line: int, end_line: int) -> None:
        self.keyword = keyword
        self.original = original
        self.line = line
        self.end_line = end_line
        self.flags: list[str] = []
        self.args: list[str] = []
        self.rest = ""
        self.json = False
        self.heredocs: list[Heredoc] = []
        self.inner: Instruction | None = None

    def __repr__(self) -> str:
        return f"Instruction({self.original!r}, line={self.line})"


class Stage:
    __slots__ = ("from_", "index", "instructions", "name")

    def __init__(self, index: int, from_: Instruction, name: str) -> None:
        self.index = index
        self.from_ = from_
        self.name = name
        self.instructions: list[Instruction] = []


class Dockerfile:
    __slots__ = ("directives", "escape", "file", "global_args", "stages")

    def __init__(self, file: str) -> None:
        self.file = file
        self.directives: dict[str, str] = {}
        self.escape = "\\"
        self.global_args: list[Instruction] = []
        self.stages: list[Stage] = []


# -- lines to instructions --------------------------------------------------------------


def _directives(lines: list[str], df: Dockerfile) -> int:
    """Read the directives at the top; the index of the first line after them."""
    for i, line in enumerate(lines):
        text = line.strip()
        if not text.startswith("#"):
            return i
        body = text[1:].strip()
        key, eq, value = body.partition("=")
        key = key.strip().lower()
        if not eq or key not in _DIRECTIVES or " " in key:
            return i
        if key in df.directives:
            raise DockerfileError(df.file, i + 1, 1, f"only one {key} parser directive can be used")
        value = value.strip()
        if key == "escape":
            if value not in ("\\", "`"):
                raise DockerfileError(
                    df.file, i + 1, 1, f"invalid escape token {value!r}: expected \\ or `"
                )
            df.escape = value
        df.directives[key] = value
    return len(lines)


def _continues(text: str, escape: str) -> bool:
    stripped = text.rstrip()
    return stripped.endswith(escape) and not stripped.endswith(escape * 2)


def _heredoc_markers(text: str) -> list[tuple[str, bool, bool]]:
    """The heredoc markers of an instruction line: (name, expand, chomp) in order."""
    out = []
    i = 0
    quote = ""
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
            i += 1
            continue
        if ch in "'\"":
            quote = ch
            i += 1
            continue
        if text.startswith("<<", i) and not text.startswith("<<<", i):
            j = i + 2
            chomp = text.startswith("-", j)
            if chomp:
                j += 1
            q = text[j] if j < len(text) and text[j] in "'\"" else ""
            if q:
                j += 1
            start = j
            while j < len(text) and (text[j].isalnum() or text[j] in "_.-"):
                j += 1
            name = text[start:j]
            if q and text[j : j + 1] == q:
                j += 1
            if name:
                out.append((name, not q, chomp))
            i = j
            continue
        i += 1
    return out


def _split_flags(rest: str) -> tuple[list[str], str]:
    flags = []
    while rest.startswith("--"):
        word, _, tail = rest.partition(" ")
        if word == "--":
            break
        flags.append(word)
        rest = tail.lstrip()
    return flags, rest


def _json_args(rest: str) -> list[str] | None:
    if not rest.startswith("["):
        return None
    try:
        value = _json.loads(rest)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _build(df: Dockerfile, keyword: str, text: str, line: int, end: int) -> Instruction:
    """An Instruction from its joined text (after the keyword)."""
    inst = Instruction(keyword, "", line, end)
    flags, rest = _split_flags(text.strip())
    inst.flags = flags
    inst.rest = rest
    allowed = _FLAGS.get(keyword, set())
    for flag in flags:
        name, eq, _ = flag[2:].partition("=")
        if name not in allowed:
            raise DockerfileError(df.file, line, 1, f"unknown flag: --{name} for {keyword.upper()}")
        if not eq and name not in _BOOL_FLAGS:
            raise DockerfileError(df.file, line, 1, f"--{name} of {keyword.upper()} needs a value")
    if keyword == "onbuild":
        inner_kw, _, inner_text = rest.partition(" ")
        inner_kw = inner_kw.lower()
        if not inner_kw:
            raise DockerfileError(df.file, line, 1, "ONBUILD requires at least one argument")
        if inner_kw in ("onbuild", "from", "maintainer"):
            raise DockerfileError(
                df.file, line, 1, f"{inner_kw.upper()} isn't allowed as an ONBUILD trigger"
            )
        if inner_kw not in KEYWORDS:
            raise DockerfileError(df.file, line, 1, f"unknown instruction: {inner_kw.upper()}")
        inst.inner = _build(df, inner_kw, inner_text, line, end)
        inst.args = [rest]
        return inst
    if keyword == "healthcheck":
        head, _, tail = rest.partition(" ")
        if head.upper() == "CMD":
            inst.inner = _build(df, "cmd", tail, line, end)
            if not inst.inner.args or not any(a.strip() for a in inst.inner.args):
                raise DockerfileError(df.file, line, 1, "HEALTHCHECK CMD requires a command")
        elif head.upper() != "NONE":
            raise DockerfileError(df.file, line, 1, "HEALTHCHECK requires CMD or NONE")
        inst.args = [rest]
        return inst
    found = _json_args(rest) if keyword in _EXEC_FORM else None
    if found is not None:
        inst.json = True
        inst.args = found
    elif keyword == "from":
        inst.args = rest.split()
    else:
        inst.args = [rest] if rest else []
    return inst


def _instructions(df: Dockerfile, lines: list[str], start: int) -> list[Instruction]:
    out: list[Instruction] = []
    escape = df.escape
    i = start
    while i < len(lines):
        raw = lines[i]
        text = raw.strip()
        if not text or text.startswith("#"):
            i += 1
            continue
        first = i
        parts: list[str] = []
        line = raw
        while _continues(line, escape):
            parts.append(line.rstrip()[: -len(escape)])
            i += 1  # the next line that is neither blank nor a comment continues it
            while i < len(lines) and (not lines[i].strip() or lines[i].lstrip().startswith("#")):
                i += 1
            if i >= len(lines):
                line = ""
                break
            line = lines[i]
        parts.append(line)
        joined = " ".join(p.strip() for p in parts if p.strip())
        col = len(raw) - len(raw.lstrip()) + 1
        word, _, rest = joined.partition(" ")
        keyword = word.lower()
        if keyword not in KEYWORDS:
            raise DockerfileError(df.file, first + 1, col, f"unknown instruction: {word.upper()}")
        heredocs: list[Heredoc] = []
        if keyword in _HEREDOC:
            for name, expand, chomp in _heredoc_markers(rest):
                body: list[str] = []
                while True:
                    i += 1
                    if i >= len(lines):
                        raise DockerfileError(
                            df.file, first + 1, col, f"unterminated heredoc {name}"
                        )
                    line = lines[i].lstrip("\t") if chomp else lines[i]
                    if line.rstrip("\r") == name:
                        break
                    body.append(line + "\n")
                heredocs.append(Heredoc(name, "".join(body), expand, chomp))
        inst = _build(df, keyword, rest, first + 1, i + 1)
        inst.original = joined
        inst.heredocs = heredocs
        if not inst.args and not heredocs and keyword not in ("cmd", "entrypoint"):
            raise DockerfileError(
                df.file, first + 1, col, f"{keyword.upper()} requires at least one argument"
            )
        out.append(inst)
        i += 1
    return out


# -- stages and checks ------------------------------------------------------------------


def _stages(df: Dockerfile, insts: list[Instruction]) -> None:
    for inst in insts:
        if inst.keyword == "from":
            args = inst.args
            name = ""
            if len(args) == 3 and args[1].lower() == "as":
                name = args[2].lower()
                ok = name[:1].isalpha() and all(c.isalnum() or c in "_.-" for c in name)
                if not ok:
                    raise DockerfileError(df.file, inst.line, 1, f"invalid stage name {args[2]!r}")
                if any(s.name == name for s in df.stages):
                    raise DockerfileError(
                        df.file, inst.line, 1, f"duplicate stage name {args[2]!r}"
                    )
            elif len(args) != 1:
                raise DockerfileError(
                    df.file, inst.line, 1, "FROM requires either one or three arguments"
                )
            df.stages.append(Stage(len(df.stages), inst, name))
        elif not df.stages:
            if inst.keyword != "arg":
                raise DockerfileError(
                    df.file, inst.line, 1,
                    f"{inst.keyword.upper()} before the first FROM: a Dockerfile must start "
                    "with FROM (only ARG may come before it)",
                )  # fmt: skip
            df.global_args.append(inst)
        else:
            df.stages[-1].instructions.append(inst)
    if not df.stages:
        raise DockerfileError(df.file, 1, 0, "no FROM instruction: there is nothing to build")


def _texts(inst: Instruction) -> list[str]:
    return [*inst.args, *inst.flags]


def _check_args(df: Dockerfile) -> None:
    """An ARG of a stage referred to before that ARG, by an earlier instruction."""
    global_names = {name for inst in df.global_args for name, _ in parse_kv(inst)}
    for stage in df.stages:
        base = stage.from_.args[0] if stage.from_.args else ""
        for name in references(base, df.escape) - global_names:
            later = _declared_in(stage.instructions, name)
            if later:
                raise DockerfileError(
                    df.file, stage.from_.line, 1,
                    f"ARG {name} is used before its definition (line {later}): a FROM sees only "
                    "the ARGs before the first FROM",
                )  # fmt: skip
        declared: set[str] = set()
        for i, inst in enumerate(stage.instructions):
            if inst.keyword in ("arg", "env"):
                declared |= {name for name, _ in parse_kv(inst)}
                continue
            if inst.keyword in ("onbuild",):
                continue
            for text in _texts(inst):
                for name in references(text, df.escape) - declared:
                    later = _declared_in(stage.instructions[i + 1 :], name, arg_only=True)
                    if later:
                        col = text.find(name)
                        raise DockerfileError(
                            df.file, inst.line, 0,
                            f"ARG {name} is used before its definition (line {later})"
                            + (f" at {inst.keyword.upper()} ...{text[max(col - 1, 0):][:40]}"
                               if col >= 0 else ""),
                        )  # fmt: skip


def _declared_in(insts: list[Instruction], name: str, arg_only: bool = True) -> int:
    for inst in insts:
        if inst.keyword == "arg" and any(n == name for n, _ in parse_kv(inst)):
            return inst.line
    return 0


def parse(text: str, file: str = "Dockerfile") -> Dockerfile:
    """The Dockerfile TEXT (named FILE in messages) as stages of instructions."""
    df = Dockerfile(file)
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.replace("\r\n", "\n").split("\n")
    start = _directives(lines, df)
    _stages(df, _instructions(df, lines, start))
    _check_args(df)
    return df


# -- key=value instructions -----------------------------------------------------------


def split_raw(text: str, escape: str = "\\") -> list[str]:
    """TEXT split on unquoted whitespace, quotes and escapes kept (expanded later)."""
    words: list[str] = []
    word: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == escape and quote != "'" and i + 1 < len(text):
            word.append(text[i : i + 2])
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in " \t\n":
            if word:
                words.append("".join(word))
                word = []
            i += 1
            continue
        word.append(ch)
        i += 1
    if quote:
        raise InvalidArgument(f"unmatched {quote} quote")
    if word:
        words.append("".join(word))
    return words


def parse_kv(inst: Instruction) -> list[tuple[str, str]]:
    """ENV/LABEL/ARG's (key, raw value) pairs: ``k=v k2="v 2"`` or the legacy ``ENV k v``;
    an ARG without a default has the value ``None``."""
    file = "Dockerfile"
    text = inst.rest
    try:
        words = split_raw(text)
    except InvalidArgument as exc:
        raise DockerfileError(file, inst.line, 0, f"{inst.keyword.upper()}: {exc}") from None
    if not words:
        raise DockerfileError(file, inst.line, 0, f"{inst.keyword.upper()} requires arguments")
    out: list[tuple[str, str]] = []
    if inst.keyword == "arg":
        for word in words:
            name, eq, value = word.partition("=")
            if not name or not all(c.isalnum() or c == "_" for c in name):
                raise DockerfileError(file, inst.line, 0, f"ARG: invalid name {name!r}")
            out.append((name, value if eq else None))  # type: ignore[arg-type]
        return out
    if "=" not in words[0]:
        if inst.keyword != "env":
            raise DockerfileError(file, inst.line, 0, "LABEL requires key=value pairs")
        key, _, value = text.partition(" ")
        value = value.strip()
        if not value:
            raise DockerfileError(file, inst.line, 0, f"ENV {key} needs a value (ENV {key}=...)")
        return [(key, value)]
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise DockerfileError(
                file, inst.line, 0,
                f"{inst.keyword.upper()}: expected key=value, got {word!r}",
            )  # fmt: skip
        out.append((key, value))
    return out
