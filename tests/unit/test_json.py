"""sampan._json against the stdlib json module: same values in, same text out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sampan import _json

DOCUMENTS = [
    "null",
    "true",
    "false",
    "0",
    "-0",
    "42",
    "-17",
    "123456789012345678901234567890",
    "3.5",
    "-1.25e-7",
    "1E400",
    '""',
    '"plain"',
    '"caf\\u00e9 \\u2603 \\ud83d\\ude00"',
    '"tab\\tnewline\\nquote\\"backslash\\\\slash\\/"',
    '"héllo wörld ☃ 😀"',
    "[]",
    "{}",
    '[1, 2.5, "x", null, true, false, [], {}]',
    '{"a": {"b": {"c": [1, [2, [3, [4]]]]}}}',
    '{"dup": 1, "dup": 2}',
    '  \n\t {"spaced" :  [ 1 ,2 ] }  \r\n',
    '{"ociVersion": "1.0.2", "process": {"args": ["sh", "-c", "echo hi"], "env": []}}',
    '{"": "", "k\\u0000": "\\u0000"}',
]


@pytest.mark.parametrize("text", DOCUMENTS)
def test_loads_matches_json(text: str) -> None:
    assert _json.loads(text) == json.loads(text)


@pytest.mark.parametrize("text", DOCUMENTS)
def test_loads_bytes_matches_json(text: str) -> None:
    assert _json.loads(text.encode()) == json.loads(text.encode())


def test_loads_keeps_integers_exact_and_floats_float() -> None:
    value = _json.loads("[12345678901234567890, 1.0, 1]")
    assert value == [12345678901234567890, 1.0, 1]
    assert [type(v) for v in value] == [int, float, int]


def test_loads_deep_nesting() -> None:
    text = "[" * 200 + "0" + "]" * 200
    assert _json.loads(text) == json.loads(text)


MALFORMED = [
    "",
    "   ",
    "{",
    "[1,]",
    "[1 2]",
    '{"a" 1}',
    '{"a": 1,}',
    "{'a': 1}",
    "{1: 2}",
    "tru",
    "nul",
    '"unterminated',
    '"bad escape \\q"',
    '"control \t char"',
    "01",
    "+1",
    ".5",
    "[1] x",
    "1 2",
    '{"a": 1} {"b": 2}',
    "NaN",
    "Infinity",
    "-Infinity",
    "[NaN]",
    '{"x": -Infinity}',
]


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_raises_jsonerror(text: str) -> None:
    with pytest.raises(ValueError):
        json.loads(text, parse_constant=_refuse)
    with pytest.raises(_json.JSONError):
        _json.loads(text)


def _refuse(name: str) -> Any:
    raise ValueError(name)


def test_jsonerror_is_a_valueerror() -> None:
    assert issubclass(_json.JSONError, ValueError)


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_constants_are_refused_by_name(text: str) -> None:
    with pytest.raises(_json.JSONError, match=f"invalid constant {text}"):
        _json.loads(text)


def test_trailing_data_gives_the_offset() -> None:
    with pytest.raises(_json.JSONError, match="extra data at char 7"):
        _json.loads('{"a":1} x')


def test_trailing_whitespace_is_fine() -> None:
    assert _json.loads('{"a": 1}\n\n  \t') == {"a": 1}


def test_empty_input_gives_the_offset() -> None:
    with pytest.raises(_json.JSONError, match="expecting a value at char 0"):
        _json.loads("")


def test_invalid_utf8_is_a_jsonerror() -> None:
    with pytest.raises(_json.JSONError, match="not UTF-8"):
        _json.loads(b'"\xff\xfe"')


VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -5,
    10**30,
    1.5,
    -0.0,
    1e-300,
    "",
    "ascii",
    "héllo ☃ 😀 \u0000 \x7f",
    'quote " backslash \\ newline \n tab \t',
    [],
    {},
    [[]],
    [{}],
    {"a": {}},
    {"a": []},
    [1, "two", 3.0, None, True, False],
    {"z": 1, "a": 2, "m": [3, {"n": None}]},
    {"unicode key é": "value ☃", "nested": {"deeper": {"deepest": [1, [2, [3]]]}}},
    (1, 2, (3,)),
    {"1": 1, "2": [], "3": {}},
]


@pytest.mark.parametrize("value", VALUES)
def test_dumps_compact_matches_json(value: Any) -> None:
    assert _json.dumps(value) == json.dumps(value, separators=(",", ":"))


@pytest.mark.parametrize("value", VALUES)
def test_dumps_spaced_matches_json(value: Any) -> None:
    assert _json.dumps(value, compact=False) == json.dumps(value)


@pytest.mark.parametrize("value", VALUES)
def test_dumps_indent_matches_json(value: Any) -> None:
    assert _json.dumps(value, indent=2) == json.dumps(value, indent=2)
    assert _json.dumps(value, indent=4) == json.dumps(value, indent=4)


@pytest.mark.parametrize("value", VALUES)
def test_round_trip(value: Any) -> None:
    expected = json.loads(json.dumps(value))
    assert _json.loads(_json.dumps(value)) == expected
    assert _json.loads(_json.dumps(value, indent=2)) == expected


def test_dumps_keeps_insertion_order() -> None:
    assert _json.dumps({"b": 1, "a": 2}) == '{"b":1,"a":2}'


def test_dumps_int_and_float_keys_like_json() -> None:
    value = {1: "one", 2.5: "two and a half"}
    assert _json.dumps(value) == json.dumps(value, separators=(",", ":"))
    assert _json.dumps(value, indent=2) == json.dumps(value, indent=2)


@pytest.mark.parametrize("key", [True, False, None])
def test_dumps_indent_constant_keys_like_json(key: Any) -> None:
    assert _json.dumps({key: 1}, indent=2) == json.dumps({key: 1}, indent=2)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), [float("nan")]])
def test_dumps_refuses_non_finite_floats(value: Any) -> None:
    with pytest.raises(ValueError):
        _json.dumps(value)
    with pytest.raises(ValueError):
        _json.dumps(value, indent=2)


def test_dumps_refuses_unserialisable_objects() -> None:
    with pytest.raises(TypeError):
        _json.dumps({"x": object()})


def test_every_malformed_document_is_a_json_error() -> None:
    # The C scanner reports some errors through json.decoder, which it finds only
    # if something imported it: check in an interpreter where nothing has.
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    code = (
        f"import sys; sys.path.insert(0, {root!r}); from sampan import _json\n"
        "for text in ('{nope', '{\"a\" 1}', '{\"a\": 1,}', '[\"a\" \"b\"]'):\n"
        "    try:\n"
        "        _json.loads(text)\n"
        "    except _json.JSONError as exc:\n"
        "        print(type(exc).__name__, exc)\n"
    )
    done = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 4 and all(line.startswith("JSONError ") for line in lines), lines
