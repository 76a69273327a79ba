"""Go's text/template, the part docker's ``--format`` users type.

Templates are the part of Go's text/template that people type: fields and
chains (``{{.Repository}}``, ``{{.Config.Env}}``, ``$var.Field``),
pipelines (``{{.ID | printf "%.5s"}}``), ``if``/``else if``/``with``/
``range`` (with ``$k, $v :=``, ``break``, ``continue``), variables,
comments, trim markers, and the functions docker adds (json, split, join,
title, lower, upper, pad, truncate) on top of Go's (and, or, not, len,
index, slice, print, printf, println, eq, ne, lt, le, gt, ge).  A template
is compiled once into closures; rendering 200 rows costs well under a
millisecond per column.

Data is a mapping.  The row itself is a *struct*: naming a field it lacks is
docker's "can't evaluate field X in type T" error; nested mappings are Go
maps: a missing key prints ``<no value>``.  A callable value is a method:
called (with the arguments given, ``{{.Label "k"}}``) when the field is
evaluated, so costly columns cost nothing unless used.

Three modules: gotemplate_lex.py (tokens), gotemplate_funcs.py (Go values
as text, printf, json, the function table), and this one (the parser, which
compiles to closures, their execution, and Template).  docker's tables,
``json`` and headers are format.py's, on top.

Nothing slow is imported: no ``re``, ``json`` or ``typing`` (the CLI's start
time is watched).
"""

from __future__ import annotations

from sampan.cli.gotemplate_funcs import (
    ARITY,
    FUNCS,
    HEADER_FUNCS,
    MANY,
    MISSING,
    ExecError,
    go_json,
    go_string,
    go_type,
    truth,
)
from sampan.cli.gotemplate_lex import KEYWORDS, ParseError, Tok, lex
from sampan.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

    Eval = Callable[[Any, "_State"], Any]
    Emit = Callable[[Any, "_State"], None]
    Stage = Callable[[Any, "_State", Any], Any]  # (dot, state, piped value or _PIPED)

__all__ = ["Template", "go_string"]

_PIPED: Any = object()  # "nothing piped into this stage"


# ---------------------------------------------------------------- execution


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _State:
    """One execution: the root (``$``), header mode, the output and the variable stack."""

    __slots__ = ("column", "funcs", "header", "mode", "out", "root", "struct", "type_name", "vars")

    def __init__(
        self, root: Any, header: bool, mode: str, type_name: str, column: Callable[[str], str]
    ) -> None:
        self.root = root
        self.header = header
        self.column = column  # a header's name for a field the headers lack
        self.mode = mode
        self.struct = mode == "list" and not header
        self.type_name = type_name
        self.funcs = HEADER_FUNCS if header else FUNCS
        self.out: list[str] = []
        self.vars: list[tuple[str, Any]] = [("$", root)]


class _Located(Exception):
    """An ExecError with the action it happened in (docker's "executing ... at <...>")."""

    def __init__(self, pos: int, node: str, message: str) -> None:
        super().__init__(message)
        self.pos = pos
        self.node = node


def _field(value: Any, name: str, st: _State, args: list[Any] | None = None) -> Any:
    """``value.name`` as text/template evaluates it (a callable value is a method)."""
    if isinstance(value, dict):
        got = value.get(name, MISSING)
        if got is MISSING:
            if st.header and value is st.root:
                return st.column(name)
            if value is st.root and not st.header:
                if st.struct:
                    raise ExecError(f"can't evaluate field {name} in type {st.type_name}")
                if st.mode == "inspect":
                    raise ExecError(f'map has no entry for key "{name}"')
            if args:
                raise ExecError(f"{name} is not a method but has arguments")
            return MISSING
        if callable(got) and not st.header:
            try:
                return got(*args) if args else got()
            except TypeError:
                raise ExecError(f"wrong number of args for {name}: got {len(args or ())}") from None
        if args:
            if st.struct and value is st.root:  # docker's fields are methods
                raise ExecError(f"wrong number of args for {name}: want 0 got {len(args)}")
            raise ExecError(f"{name} is not a method but has arguments")
        return got
    if value is MISSING:
        return MISSING
    if st.header and isinstance(value, str):
        return value  # in a header, ".A.B" stays the column name of A
    if value is None:
        raise ExecError(f"nil pointer evaluating interface {{}}.{name}")
    raise ExecError(f"can't evaluate field {name} in type {go_type(value)}")


def _call_json(st: _State, value: Any) -> str:
    if value is st.root and st.struct:  # docker's MarshalJSON of a list row
        return go_json(value, html=True, sort_keys=True)
    if st.header:
        return go_string(value)
    return go_json(value, html=False)


class _Operand:
    """A parsed operand: a function name, or a base evaluator with a field chain."""

    __slots__ = ("base", "chain", "func", "positions", "text", "tok")

    def __init__(self, tok: Tok, base: Eval | None, chain: list[str], func: str = "") -> None:
        self.tok = tok
        self.base = base
        self.chain = chain
        self.func = func
        self.positions: list[int] = []  # of each chain element
        self.text = tok.text

    def evaluator(self) -> Eval:
        if self.func:
            stage = _call(self.func, [], self.tok.pos)
            return lambda dot, st: stage(dot, st, _PIPED)
        assert self.base is not None
        base, chain = self.base, self.chain
        if not chain:
            return base
        text, positions = self.text, self.positions
        if base is _dot and len(chain) == 1:
            name, pos = chain[0], positions[0]

            def one(dot: Any, st: _State) -> Any:
                if type(dot) is dict:  # the common case, inlined
                    got = dot.get(name, MISSING)
                    if got is not MISSING and not callable(got):
                        return got
                try:
                    return _field(dot, name, st)
                except ExecError as exc:
                    raise _Located(pos, text, str(exc)) from None

            return one

        def many(dot: Any, st: _State) -> Any:
            value = base(dot, st)
            for k, name in enumerate(chain):
                try:
                    value = _field(value, name, st)
                except ExecError as exc:
                    raise _Located(positions[k], text, str(exc)) from None
            return value

        return many


def _dot(dot: Any, st: _State) -> Any:
    return dot


def _nil(dot: Any, st: _State) -> Any:
    return None


def _variable(name: str) -> Eval:
    def get(dot: Any, st: _State) -> Any:
        for k in range(len(st.vars) - 1, -1, -1):
            if st.vars[k][0] == name:
                return st.vars[k][1]
        return MISSING

    return get


def _call(name: str, args: list[Eval], pos: int = 0) -> Stage:
    def call(dot: Any, st: _State, piped: Any = _PIPED) -> Any:
        values = [a(dot, st) for a in args]
        if piped is not _PIPED:
            values.append(piped)
        if name == "json" and len(values) == 1:
            return _call_json(st, values[0])
        low, high = ARITY[name]
        if not low <= len(values) <= high:
            want = f"at least {low}" if high == MANY else str(low)
            message = f"wrong number of args for {name}: want {want} got {len(values)}"
            raise _Located(pos, name, message)
        return st.funcs[name](*values)

    return call


def _method(op: _Operand, args: list[Eval]) -> Stage:
    """``.A.Method arg...`` (and a value piped into a field chain)."""
    assert op.base is not None
    base, chain = op.base, op.chain
    plain = op.evaluator()

    def call(dot: Any, st: _State, piped: Any = _PIPED) -> Any:
        if not args and piped is _PIPED:
            return plain(dot, st)
        values = [a(dot, st) for a in args]
        if piped is not _PIPED:
            values.append(piped)
        value = base(dot, st)
        for name in chain[:-1]:
            value = _field(value, name, st)
        return _field(value, chain[-1], st, values)

    return call


def _value_stage(ev: Eval, text: str) -> Stage:
    def stage(dot: Any, st: _State, piped: Any = _PIPED) -> Any:
        if piped is not _PIPED:
            raise ExecError(f"can't give argument to non-function {text}")
        return ev(dot, st)

    return stage


def _fail_stage(message: str) -> Stage:
    def fail(dot: Any, st: _State, piped: Any = _PIPED) -> Any:
        raise ExecError(message)

    return fail


def _located(pos: int, node: str, stage: Stage) -> Stage:
    def run(dot: Any, st: _State, piped: Any = _PIPED) -> Any:
        try:
            return stage(dot, st, piped)
        except ExecError as exc:
            raise _Located(pos, node, str(exc)) from None

    return run


def _pipeline(stages: list[Stage]) -> Eval:
    first = stages[0]
    if len(stages) == 1:
        return lambda dot, st: first(dot, st, _PIPED)
    rest = stages[1:]

    def run(dot: Any, st: _State) -> Any:
        value = first(dot, st, _PIPED)
        for stage in rest:
            value = stage(dot, st, value)
        return value

    return run


def _text_emitter(text: str) -> Emit:
    def emit(dot: Any, st: _State) -> None:
        st.out.append(text)

    return emit


def _print_emitter(fn: Eval) -> Emit:
    def emit(dot: Any, st: _State) -> None:
        value = fn(dot, st)
        st.out.append(value if type(value) is str else go_string(value))

    return emit


def _silent_emitter(fn: Eval) -> Emit:
    def run(dot: Any, st: _State) -> None:
        fn(dot, st)

    return run


def _if_emitter(cond: Eval, body: list[Emit], else_body: list[Emit]) -> Emit:
    def do_if(dot: Any, st: _State) -> None:
        mark = len(st.vars)
        for item in body if truth(cond(dot, st)) else else_body:
            item(dot, st)
        del st.vars[mark:]

    return do_if


def _with_emitter(cond: Eval, body: list[Emit], else_body: list[Emit]) -> Emit:
    def do_with(dot: Any, st: _State) -> None:
        mark = len(st.vars)
        value = cond(dot, st)
        if truth(value):
            for item in body:
                item(value, st)
        else:
            for item in else_body:
                item(dot, st)
        del st.vars[mark:]

    return do_with


def _range_emitter(
    names: list[str], cond: Eval, body: list[Emit], else_body: list[Emit], where: tuple[int, str]
) -> Emit:
    def do_range(dot: Any, st: _State) -> None:
        mark = len(st.vars)
        value = cond(dot, st)
        pairs: Iterable[tuple[Any, Any]]
        if isinstance(value, dict):
            pairs = [(k, value[k]) for k in sorted(value, key=str)]
        elif isinstance(value, (list, tuple)):
            pairs = enumerate(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            pairs = ((i, i) for i in range(value))
        elif value is None or value is MISSING:
            pairs = ()
        else:
            raise _Located(*where, f"range can't iterate over {go_string(value)}")
        ran = False
        for key, elem in pairs:
            ran = True
            if len(names) == 2:
                st.vars.append((names[0], key))
                st.vars.append((names[1], elem))
            elif names:
                st.vars.append((names[0], elem))
            try:
                for item in body:
                    item(elem, st)
            except _Continue:
                pass
            except _Break:
                break
            finally:
                del st.vars[mark:]
        if not ran:
            for item in else_body:
                item(dot, st)

    return do_range


def _raise_emitter(exc: type[Exception]) -> Emit:
    def run(dot: Any, st: _State) -> None:
        raise exc

    return run


# ---------------------------------------------------------------- parser


class _Parser:
    """Recursive descent over the tokens, building closures as it goes."""

    def __init__(self, src: str, toks: list[Tok]) -> None:
        self.src = src
        self.toks = toks
        self.i = 0
        self.vars: list[str] = ["$"]  # declared variables in scope
        self.loops = 0
        self.last = (0, "")  # where the last command parsed is: (pos, text)

    def peek(self) -> Tok:
        return self.toks[self.i]

    def skip_space(self) -> Tok:
        while self.toks[self.i].kind == "space":
            self.i += 1
        return self.toks[self.i]

    def fail(self, message: str) -> ParseError:
        return ParseError(message, self.toks[self.i].pos)

    def expect_close(self, context: str) -> None:
        tok = self.skip_space()
        if tok.kind == ")":
            raise self.fail("unexpected right paren")
        if tok.kind != "}}":
            raise self.fail(f"unexpected {tok.text!r} in {context}")
        self.i += 1

    def parse(self) -> list[Emit]:
        body, _stop = self.items(())
        return body

    def items(self, stops: tuple[str, ...]) -> tuple[list[Emit], str]:
        """Parse until a keyword in ``stops`` (end/else); returns the body and that keyword."""
        body: list[Emit] = []
        while True:
            tok = self.toks[self.i]
            self.i += 1
            if tok.kind == "eof":
                if stops:
                    self.i -= 1
                    raise self.fail("unexpected EOF")
                return body, ""
            if tok.kind == "text":
                body.append(_text_emitter(tok.text))
                continue
            first = self.skip_space()  # after "{{"
            if first.kind == "}}":
                raise self.fail("missing value for command")
            if first.kind == "ident" and first.value in KEYWORDS:
                word = first.value
                self.i += 1
                if word in stops:
                    return body, word
                if word in ("end", "else"):
                    raise ParseError(f"unexpected {{{{{word}}}}}", first.pos)
                body.append(self.control(word))
                continue
            fn, declares = self.pipeline("command", decl_ok=True)
            self.expect_close("command")
            body.append(_silent_emitter(fn) if declares else _print_emitter(fn))

    def control(self, word: str) -> Emit:
        if word in ("break", "continue"):
            if not self.loops:
                raise self.fail(f"{{{{{word}}}}} outside {{{{range}}}}")
            self.expect_close(word)
            return _raise_emitter(_Break if word == "break" else _Continue)
        if word in ("define", "template", "block"):
            raise self.fail(f"{{{{{word}}}}} is not supported")
        mark = len(self.vars)
        names = self.range_vars() if word == "range" else []
        cond, _ = self.pipeline(word, decl_ok=word != "range")
        where = self.last
        self.expect_close(word)
        self.loops += word == "range"
        body, stop = self.items(("end", "else"))
        self.loops -= word == "range"
        else_body: list[Emit] = []
        if stop == "else":
            nxt = self.skip_space()
            if nxt.kind == "ident" and nxt.value in ("if", "with") and word != "range":
                # "{{else if ...}}" is "{{else}}{{if ...}}...{{end}}" sharing this end
                self.i += 1
                del self.vars[mark:]
                else_body = [self.control(nxt.value)]
                return (
                    _if_emitter(cond, body, else_body)
                    if word == "if"
                    else _with_emitter(cond, body, else_body)
                )
            self.expect_close("else")
            else_body, _ = self.items(("end", "else"))
            if _ == "else":
                raise self.fail("expected end; found {{else}}")
        self.expect_close("end")
        del self.vars[mark:]
        if word == "if":
            return _if_emitter(cond, body, else_body)
        if word == "with":
            return _with_emitter(cond, body, else_body)
        return _range_emitter(names, cond, body, else_body, where)

    def range_vars(self) -> list[str]:
        """``$k, $v :=`` or ``$v :=`` after range, declared for the body."""
        save = self.i
        names: list[str] = []
        tok = self.skip_space()
        while tok.kind == "var":
            if len(names) == 2:
                raise self.fail("too many declarations in range")
            names.append(tok.value)
            self.i += 1
            tok = self.skip_space()
            if tok.kind != ",":
                break
            self.i += 1
            tok = self.skip_space()
        if names and tok.kind in (":=", "="):
            self.i += 1
            self.vars.extend(names)
            return names
        self.i = save
        return []

    def pipeline(self, context: str, decl_ok: bool) -> tuple[Eval, bool]:
        """``[$x :=|=] stage | stage ...``; returns (evaluator, declares-a-variable)."""
        decl = ""
        assign = False
        tok = self.skip_space()
        if tok.kind == "var" and decl_ok:
            save = self.i
            self.i += 1
            op = self.skip_space()
            if op.kind in (":=", "="):
                self.i += 1
                decl, assign = tok.value, op.kind == "="
                if assign and decl not in self.vars:
                    raise ParseError(f'undefined variable "{decl}"', tok.pos)
            else:
                self.i = save
        stages: list[Stage] = []
        while True:
            stages.append(self.command(context))
            if self.skip_space().kind != "|":
                break
            self.i += 1
            if self.skip_space().kind == "}}":
                break  # text/template accepts a trailing "|"
        pipe = _pipeline(stages)
        if not decl:
            return pipe, False
        if not assign:
            self.vars.append(decl)
        name = decl

        def declare(dot: Any, st: _State) -> Any:
            value = pipe(dot, st)
            if assign:
                for k in range(len(st.vars) - 1, -1, -1):
                    if st.vars[k][0] == name:
                        st.vars[k] = (name, value)
                        break
            else:
                st.vars.append((name, value))
            return value

        return declare, True

    def command(self, context: str) -> Stage:
        """One stage: a function call, a method call, or a single operand."""
        operands: list[_Operand] = []
        while True:
            tok = self.skip_space()
            if tok.kind in ("}}", "|", ")", "eof"):
                break
            operands.append(self.operand(context))
        if not operands:
            if tok.kind == "|":
                raise self.fail(f'unexpected "|" in {context}')
            raise self.fail(f"missing value for {context}")
        head = operands[0]
        args = [op.evaluator() for op in operands[1:]]
        if head.func:
            node = self.src[head.tok.pos : self.toks[self.i].pos].strip()
            self.last = (head.tok.pos, node)
            return _located(head.tok.pos, node, _call(head.func, args, head.tok.pos))
        self.last = (head.tok.pos, head.text)
        if head.chain:
            return _located(head.positions[-1], head.text, _method(head, args))
        if head.base is _nil:
            return _located(head.tok.pos, "nil", _fail_stage("nil is not a command"))
        if args:
            stage = _fail_stage(f"can't give argument to non-function {head.text}")
        else:
            stage = _value_stage(head.evaluator(), head.text)
        return _located(head.tok.pos, head.text, stage)

    def operand(self, context: str) -> _Operand:
        """A term and any ``.Field`` chain after it."""
        tok = self.toks[self.i]
        self.i += 1
        chain: list[str] = []
        base: Eval
        if tok.kind == "field":
            chain.append(tok.value)
            base = _dot
        elif tok.kind == "dot":
            if self.peek().kind in ("field", "dot"):
                raise self.fail('unexpected . after term "."')
            base = _dot
        elif tok.kind == "var":
            if tok.value not in self.vars:
                raise ParseError(f'undefined variable "{tok.value}"', tok.pos)
            base = _variable(tok.value)
        elif tok.kind == "const":
            value = tok.value
            base = lambda dot, st: value  # noqa: E731
        elif tok.kind == "(":
            base, _ = self.pipeline(context, decl_ok=True)
            if self.skip_space().kind != ")":
                raise self.fail("unclosed left paren")
            self.i += 1
        elif tok.kind == "ident" and tok.value not in KEYWORDS:
            if tok.value not in FUNCS:
                raise ParseError(f'function "{tok.value}" not defined', tok.pos)
            return _Operand(tok, None, [], func=tok.value)
        elif tok.kind == "nil":
            base = _nil
        else:
            raise ParseError(f"unexpected {tok.text!r} in {context}", tok.pos)
        positions = [tok.pos] if chain else []
        while self.peek().kind == "field":
            chain.append(self.peek().value)
            positions.append(self.peek().pos)
            self.i += 1
        if self.peek().kind == "dot":
            raise self.fail("unexpected <.> in operand")
        op = _Operand(tok, base, chain)
        op.positions = positions
        op.text = self.src[tok.pos : self.peek().pos]
        return op


# ---------------------------------------------------------------- public


def _position(src: str, pos: int) -> str:
    line = src.count("\n", 0, pos) + 1
    col = pos - (src.rfind("\n", 0, pos) + 1)
    return f"{line}:{col}"


class Template:
    """One compiled Go template.

    >>> Template("{{.Repository}}:{{.Tag}}").render({"Repository": "busybox", "Tag": "1"})
    'busybox:1'

    ``mode`` says what the data is, as docker sees it:

    ``"list"``     a row of a list command (images, ps, history): a field the
                   row lacks is "can't evaluate field X in type TYPE_NAME";
                   ``{{json .}}`` prints the row with sorted keys and ``<>&``
                   escaped, as docker's MarshalJSON of its contexts does.
    ``"inspect"``  an inspect document: a key the document lacks is "map has
                   no entry for key"; nested objects are maps (``<no value>``).
    ``"map"``      plain data: anything missing prints ``<no value>``.
    """

    __slots__ = ("_body", "mode", "source", "type_name")

    def __init__(self, source: str, *, mode: str = "list", type_name: str = "row") -> None:
        if mode not in ("list", "inspect", "map"):
            raise ValueError(f"template mode {mode!r}")
        self.source = source
        self.mode = mode
        self.type_name = type_name
        try:
            self._body = _Parser(source, lex(source)).parse()
        except ParseError as exc:
            line = source.count("\n", 0, exc.pos or 0) + 1
            raise InvalidArgument(f"template parsing error: template: :{line}: {exc}") from None

    def render(self, data: Any) -> str:
        """The template executed with ``data`` as dot."""
        return self._execute(data, header=False)

    def render_header(
        self, headers: Mapping[str, str], column: Callable[[str], str] = str.upper
    ) -> str:
        """The header row: fields name their column (``headers``, else ``column(field)``).

        It runs with docker's header functions: ``json``, ``upper``, ``split``
        and the other string functions leave a column name as it is.
        """
        return self._execute(dict(headers), header=True, column=column)

    def _run(self, data: Any, header: bool, column: Callable[[str], str]) -> str:
        st = _State(data, header, self.mode, self.type_name, column)
        try:
            for item in self._body:
                item(data, st)
        except (_Located, ExecError, _Break, _Continue):
            if header:  # docker prints what the header wrote before failing
                return "".join(st.out)
            raise
        return "".join(st.out)

    def _execute(self, data: Any, header: bool, column: Callable[[str], str] = str.upper) -> str:
        try:
            return self._run(data, header, column)
        except _Located as exc:
            raise InvalidArgument(
                f"template parsing error: template: :{_position(self.source, exc.pos)}: "
                f'executing "" at <{exc.node}>: {exc}'
            ) from None
        except ExecError as exc:
            raise InvalidArgument(f'template parsing error: template: : executing "": {exc}')
        except (_Break, _Continue):
            raise InvalidArgument("template parsing error: break or continue outside range")
