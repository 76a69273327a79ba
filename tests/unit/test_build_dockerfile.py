"""The Dockerfile parser: directives, continuations, forms, heredocs, stages and errors."""

from __future__ import annotations

import pytest

from sampan.build.dockerfile import DockerfileError, parse, parse_kv
from sampan.errors import InvalidArgument


def test_directives_continuations_comments_and_forms() -> None:
    df = parse(
        "# syntax=docker/dockerfile:1\n# escape=`\n\nARG BASE=busybox\nFROM $BASE AS Build\n"
        "RUN echo a && `\n  # a comment inside\n\n  echo b\n"
        'CMD ["sh", "-c", "x"]\nENTRYPOINT [not json\nCOPY --chown=1:2 --link a b /c/\n'
    )
    assert df.directives == {"syntax": "docker/dockerfile:1", "escape": "`"}
    assert df.escape == "`"
    assert [i.original for i in df.global_args] == ["ARG BASE=busybox"]
    stage = df.stages[0]
    assert stage.name == "build" and stage.from_.args == ["$BASE", "AS", "Build"]
    run, cmd, entry, copy = stage.instructions
    assert run.args == ["echo a && echo b"] and not run.json
    assert (run.line, run.end_line) == (6, 9)
    assert cmd.json and cmd.args == ["sh", "-c", "x"]
    assert not entry.json and entry.args == ["[not json"]
    assert copy.flags == ["--chown=1:2", "--link"] and copy.args == ["a b /c/"]


def test_a_directive_after_anything_else_is_a_comment() -> None:
    df = parse("FROM busybox\n# escape=`\nRUN echo \\\n  x\n")
    assert df.escape == "\\" and df.directives == {}
    assert df.stages[0].instructions[0].args == ["echo x"]


def test_heredocs() -> None:
    df = parse(
        "FROM busybox\nRUN <<EOF\necho $HOME\nEOF\n"
        "RUN cat <<-'ONE' > /a && cat <<TWO > /b\n\tquoted $X\n\tONE\nplain\nTWO\n"
        "COPY <<conf /etc/app.conf\nkey=value\nconf\nCMD done\n"
    )
    first, second, copy, cmd = df.stages[0].instructions
    assert [(h.name, h.content, h.expand) for h in first.heredocs] == [
        ("EOF", "echo $HOME\n", True)
    ]
    assert [(h.name, h.content, h.expand, h.chomp) for h in second.heredocs] == [
        ("ONE", "quoted $X\n", False, True),
        ("TWO", "plain\n", True, False),
    ]
    assert (second.line, second.end_line) == (5, 9)
    assert copy.heredocs[0].content == "key=value\n"
    assert cmd.line == 13


def test_onbuild_and_healthcheck_inner_instructions() -> None:
    df = parse(
        'FROM busybox\nONBUILD RUN echo x\nHEALTHCHECK --interval=5s CMD ["true"]\n'
        "HEALTHCHECK NONE\n"
    )
    onbuild, check, none = df.stages[0].instructions
    assert onbuild.inner is not None and onbuild.inner.keyword == "run"
    assert check.inner is not None and check.inner.json and check.inner.args == ["true"]
    assert check.flags == ["--interval=5s"]
    assert none.inner is None and none.args == ["NONE"]


def test_key_value_instructions() -> None:
    df = parse(
        'FROM busybox\nENV A=1 B="two words" C=\\$x\nENV LEGACY some value\n'
        'LABEL "com.example.x"=y z=""\nARG ONE TWO=2\n'
    )
    env, legacy, label, arg = df.stages[0].instructions
    assert parse_kv(env) == [("A", "1"), ("B", '"two words"'), ("C", "\\$x")]
    assert parse_kv(legacy) == [("LEGACY", "some value")]
    assert parse_kv(label) == [('"com.example.x"', "y"), ("z", '""')]
    assert parse_kv(arg) == [("ONE", None), ("TWO", "2")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM busybox\nFORM x\n", "Dockerfile:2:1: unknown instruction: FORM"),
        ("  RUN x\n", "Dockerfile:1:1: RUN before the first FROM"),
        ("# just a comment\n", "Dockerfile:1: no FROM instruction"),
        ("FROM busybox\nRUN echo $V\nARG V=1\n", "Dockerfile:2: ARG V is used before"),
        ("FROM $B\nARG B\n", "Dockerfile:1:1: ARG B is used before its definition (line 2)"),
        ("FROM busybox\nCOPY --bogus=1 a b\n", "Dockerfile:2:1: unknown flag: --bogus for COPY"),
        ("FROM busybox\nRUN --from=x true\n", "unknown flag: --from for RUN"),
        ("FROM busybox\nEXPOSE\n", "Dockerfile:2:1: EXPOSE requires at least one argument"),
        ("FROM busybox\nONBUILD FROM x\n", "FROM isn't allowed as an ONBUILD trigger"),
        ("FROM busybox\nHEALTHCHECK echo\n", "HEALTHCHECK requires CMD or NONE"),
        ("FROM a AS x\nFROM b AS x\n", "duplicate stage name"),
        ("FROM a b\n", "FROM requires either one or three arguments"),
        ("FROM busybox\nRUN <<EOF\nnever ends\n", "unterminated heredoc EOF"),
        ("# escape=x\nFROM a\n", "invalid escape token"),
    ],
)
def test_errors_name_file_line_and_column(text: str, message: str) -> None:
    with pytest.raises(DockerfileError) as info:
        parse(text)
    assert message in str(info.value)
    assert isinstance(info.value, InvalidArgument)


def test_an_arg_redeclared_in_the_stage_is_fine() -> None:
    df = parse("ARG V=1\nFROM busybox:$V\nARG V\nRUN echo $V\nENV W=$V\n")
    assert len(df.stages[0].instructions) == 3
