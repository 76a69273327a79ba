"""Image references: docker's grammar and normalisation (sampan.oci.reference)."""

from __future__ import annotations

import pytest

from sampan.errors import InvalidArgument
from sampan.oci.reference import Reference, parse_reference, parse_repository

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "full", "familiar"),
    [
        ("busybox", "docker.io/library/busybox:latest", "busybox"),
        ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox"),
        ("user/app", "docker.io/user/app:latest", "user/app"),
        ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox"),
        ("index.docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox"),
        ("index.docker.io/user/app:v1", "docker.io/user/app:v1", "user/app"),
        ("docker.io/library/a/b", "docker.io/library/a/b:latest", "library/a/b"),
        ("localhost/x", "localhost/x:latest", "localhost/x"),
        ("localhost:5000/x", "localhost:5000/x:latest", "localhost:5000/x"),
        ("127.0.0.1:5099/a/b/c:t", "127.0.0.1:5099/a/b/c:t", "127.0.0.1:5099/a/b/c"),
        ("quay.io/podman/stable", "quay.io/podman/stable:latest", "quay.io/podman/stable"),
        ("[::1]:5000/x", "[::1]:5000/x:latest", "[::1]:5000/x"),
        ("host:5000/a/b@" + D, "host:5000/a/b@" + D, "host:5000/a/b"),
        ("busybox:latest@" + D, "docker.io/library/busybox:latest@" + D, "busybox"),
        ("ab-c__d--e/f_g.h", "docker.io/ab-c__d--e/f_g.h:latest", "ab-c__d--e/f_g.h"),
        ("Host.Example/x", "Host.Example/x:latest", "Host.Example/x"),
        ("x:A_b.c-D", "docker.io/library/x:A_b.c-D", "x"),
        ("x:" + "t" * 128, "docker.io/library/x:" + "t" * 128, "x"),
    ],
)
def test_normalisation(text: str, full: str, familiar: str) -> None:
    ref = parse_reference(text)
    assert str(ref) == full
    assert ref.familiar() == familiar
    assert parse_reference(str(ref)) == ref  # the full form parses to itself


def test_fields_and_helpers() -> None:
    ref = parse_reference("127.0.0.1:5000/team/app:v2")
    assert (ref.domain, ref.path, ref.tag, ref.digest) == ("127.0.0.1:5000", "team/app", "v2", None)
    assert ref.name == "127.0.0.1:5000/team/app"
    assert ref.reference == "v2"
    assert str(ref.with_tag("v3")) == "127.0.0.1:5000/team/app:v3"
    pinned = ref.with_digest(D)
    assert str(pinned) == "127.0.0.1:5000/team/app@" + D
    assert pinned.reference == D
    assert parse_reference("busybox").familiar_string() == "busybox:latest"
    assert parse_reference("busybox@" + D).tag is None  # a digest alone gets no tag
    assert str(parse_repository("busybox")) == "docker.io/library/busybox"
    assert parse_reference("x", default_tag=False).tag is None


def test_value_semantics() -> None:
    a, b = parse_reference("busybox"), parse_reference("docker.io/library/busybox:latest")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != parse_reference("busybox:1")
    with pytest.raises(AttributeError):
        a.tag = "x"  # type: ignore[misc]
    assert "busybox" in repr(a)
    assert Reference("docker.io", "library/x") == parse_reference("x", default_tag=False)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("Busybox", "must be lowercase"),
        ("user/App", "must be lowercase"),
        ("busybox:", "tag"),
        ("busybox:.x", "tag"),
        ("busybox:" + "t" * 129, "tag"),
        ("busybox@sha256:123", "digest"),
        ("busybox@md5:" + "a" * 32, "digest"),
        ("a//b", "component"),
        ("a/b/", "component"),
        ("-a/b", "component"),
        ("a/b-", "component"),
        ("a/b..c", "component"),
        ("a/b___c", "component"),
        ("a b", "component"),
        ("host:/x", "domain"),
        ("host:5x/x", "domain"),
        ("-host.io/x", "domain"),
        ("ho_st.io/x", "domain"),
        ("[::1/x", "domain"),
        ("a" * 64, "64-byte hexadecimal"),
        ("a/" + "b" * 256, "longer than 255"),
    ],
)
def test_invalid(text: str, words: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_reference(text)
    message = str(err.value)
    assert words in message
    assert message == message.strip() and "\n" not in message
    if text and len(text) < 100:
        assert text in message  # the error names the reference


def test_repository_refuses_tag() -> None:
    with pytest.raises(InvalidArgument, match="tag or digest"):
        parse_repository("busybox:1")
    with pytest.raises(InvalidArgument):
        parse_reference("busybox").with_tag("bad tag")


def test_module_imports_no_re() -> None:
    import subprocess
    import sys

    root = __file__.rsplit("/tests/", 1)[0]
    code = f"import sys; sys.path.insert(0, {root!r}); import sampan.oci.reference; "
    code += "print('re' in sys.modules)"
    out = subprocess.run([sys.executable, "-IS", "-c", code], capture_output=True, text=True,
                         check=True)  # fmt: skip
    assert out.stdout.strip() == "False"
