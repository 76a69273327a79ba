"""``import_rootfs`` and ``--change``: the configs docker's own import made of the same changes.

Each expected container config below is what ``docker image inspect
--format '{{json .Config}}'`` printed after ``docker import -c ...`` of the
same instructions (docker 20.10; STOPSIGNAL is accepted by newer dockers).
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sampan.errors import InvalidArgument, Unsupported
from sampan.image.archive_import import import_rootfs, parse_changes
from sampan.image.store import ImageStore
from sampan.oci import image as oi
from sampan.oci.digest import sha256_of


def rootfs_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("bin/sh", b"#!shell\n"), ("etc/os-release", b"ID=test\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("tmp")
        info.type = tarfile.DIRTYPE
        info.mode = 0o1777
        tar.addfile(info)
    return buf.getvalue()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ImageStore]:
    s = ImageStore(str(tmp_path / "image"), driver="vfs")
    yield s
    s.close()


# ---------------------------------------------------------------- --change


DOCKER_CHANGES = [
    (
        ['CMD ["sh","-c","echo hi"]', 'ENV A=1 B="two words" C=$A-x', "ENV LEGACY some value here",
         "EXPOSE 80 443/udp 8000-8002", 'LABEL a=b "c d"="e f"', "WORKDIR /app",
         "WORKDIR sub/$A", "USER nobody:nogroup", 'VOLUME ["/data","/logs"]', "VOLUME /x /y",
         "ONBUILD RUN echo hi", "ENTRYPOINT /bin/echo hello"],
        {"User": "nobody:nogroup",
         "ExposedPorts": {"443/udp": {}, "80/tcp": {}, "8000/tcp": {}, "8001/tcp": {},
                          "8002/tcp": {}},
         "Env": ["A=1", "B=two words", "C=-x", "LEGACY=some value here"],
         "Entrypoint": ["/bin/sh", "-c", "/bin/echo hello"], "Cmd": ["sh", "-c", "echo hi"],
         "Volumes": {"/data": {}, "/logs": {}, "/x": {}, "/y": {}}, "WorkingDir": "/app/sub/1",
         "Labels": {"a": "b", "c d": "e f"}, "OnBuild": ["RUN echo hi"]},
    ),
    (["cmd echo lower"], {"Cmd": ["/bin/sh", "-c", "echo lower"]}),
    (["CMD"], {"Cmd": ["/bin/sh", "-c"]}),
    (['ENTRYPOINT ["a"]', 'CMD ["b"]'], {"Entrypoint": ["a"], "Cmd": ["b"]}),
    (['CMD ["b"]', 'ENTRYPOINT ["a"]'], {"Entrypoint": ["a"], "Cmd": ["b"]}),
    (["ENV X=1", "ENV X=2 Y=${X:-no}", "LABEL 'q'=\"$X\" w=a\\ b"],
     {"Env": ["X=2", "Y=1"], "Labels": {"q": "2", "w": "a b"}}),
    (["CMD [broken json"], {"Cmd": ["/bin/sh", "-c", "[broken json"]}),
    (["ENV a=b=c d="], {"Env": ["a=b=c", "d="]}),
    (["onbuild env x=1"], {"OnBuild": ["env x=1"]}),
    (["EXPOSE 80/sctp 1-2/tcp"], {"ExposedPorts": {"1/tcp": {}, "2/tcp": {}, "80/sctp": {}}}),
    (["WORKDIR rel"], {"WorkingDir": "/rel"}),
    (["ENTRYPOINT []"], {"Entrypoint": []}),
    (["STOPSIGNAL SIGKILL"], {"StopSignal": "SIGKILL"}),
    (["ENV a=1 \\\n  b=2", "# a comment\n\nUSER u"], {"Env": ["a=1", "b=2"], "User": "u"}),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "config"), DOCKER_CHANGES)
def test_changes_make_dockers_config(changes: list[str], config: dict[str, object]) -> None:
    assert parse_changes(changes) == config


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("RUN echo", "run is not a valid change command"),
        ("FOO bar", "foo is not a valid change command"),
        ("ONBUILD ONBUILD RUN x", "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
        ("ENV", "ENV requires at least one argument"),
        ("ENV a", "ENV must have two arguments"),
        ("LABEL", "LABEL requires at least one argument"),
        ("EXPOSE abc", "invalid containerPort: abc"),
        ("EXPOSE 80/foo", "invalid proto: foo"),
        ("EXPOSE 9-8", "invalid range"),
        ("STOPSIGNAL NOPE", "invalid signal: NOPE"),
        ("USER a b", "USER requires exactly one argument"),
        ('ENV a="open', "unexpected end of statement"),
        ("ENV a=${B:?unset}", "B: unset"),
        ("ENV a=1 # no comments here", "can't find = in '#'"),
    ],
)
def test_bad_changes(change: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_changes([change])
    assert message in str(err.value)


def test_variables_follow_the_dockerfile_shell_rules() -> None:
    config = parse_changes(["ENV A=a E=", "ENV B=${A}b C=${E:-dflt} D=${A:+set} F=\\$A G='$A'"])
    assert config["Env"] == ["A=a", "E=", "B=ab", "C=dflt", "D=set", "F=$A", "G=$A"]


# ---------------------------------------------------------------- import


@pytest.mark.parametrize(
    "compress",
    [lambda b: b, lambda b: gzip.compress(b, mtime=0), bz2.compress, lzma.compress],
    ids=["plain", "gzip", "bzip2", "xz"],
)
def test_import_makes_a_one_layer_image(store: ImageStore, compress: object) -> None:
    tar = rootfs_tar()
    stream = io.BytesIO(compress(tar))  # type: ignore[operator]
    image_id = import_rootfs(store, stream, changes=["CMD sh", "ENV A=1"], ref="imported:1")
    record = store.resolve("imported:1")
    assert record.id == image_id
    assert record.diff_ids == [sha256_of(tar)]  # the decompressed tar is the layer
    manifest = store.manifest(record)
    assert manifest.media_type == oi.OCI_MANIFEST
    assert [(d.media_type, d.digest) for d in manifest.layers] == [(oi.OCI_LAYER, sha256_of(tar))]
    config = store.config_of(record).raw
    assert config["config"] == {"Cmd": ["/bin/sh", "-c", "sh"], "Env": ["A=1"]}
    assert config["os"] == "linux" and config["architecture"] == oi.host_platform().architecture
    assert config["comment"] == "Imported from -"
    assert config["history"] == [{"created": config["created"], "comment": "Imported from -"}]
    layer = Path(store.snapshots.layer_dir(record.chain[0]))
    assert (layer / "bin" / "sh").read_bytes() == b"#!shell\n"


def test_import_message_and_no_name(store: ImageStore) -> None:
    image_id = import_rootfs(store, io.BytesIO(rootfs_tar()), message="my message")
    record = store.get(image_id)
    assert record.tags == []
    assert store.config_of(record).raw["comment"] == "my message"


def test_import_of_an_empty_tar(store: ImageStore) -> None:
    image_id = import_rootfs(store, io.BytesIO(bytes(10240)), ref="empty:1")
    assert store.get(image_id).size == 0


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b"", InvalidArgument, "empty input"),
        (b"this is not a tar archive at all\n" * 50, InvalidArgument, "not a tar archive"),
        (gzip.compress(b"garbage " * 100), InvalidArgument, "not a tar archive"),
        (b"\x1f\x8b\x08\x00" + b"\x00" * 40, InvalidArgument, "corrupt compressed stream"),
        (b"\x28\xb5\x2f\xfd" + bytes(60), Unsupported, "zstd"),
        (rootfs_tar()[:700], InvalidArgument, "truncated tar stream"),
    ],
    ids=["empty", "text", "gzip-text", "bad-gzip", "zstd", "truncated"],
)
def test_bad_imports_register_nothing(
    store: ImageStore, data: bytes, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        import_rootfs(store, io.BytesIO(data), ref="bad:1")
    assert store.list() == []
    store.collect()
    assert list(store.content.list()) == []


def test_bad_name_or_change_is_refused_before_reading(store: ImageStore) -> None:
    class Unread(io.BytesIO):
        def read(self, *args: object) -> bytes:
            raise AssertionError("read")

    with pytest.raises(InvalidArgument, match="digest"):
        import_rootfs(store, Unread(), ref=f"x@{sha256_of(b'x')}")
    with pytest.raises(InvalidArgument, match="run is not a valid change command"):
        import_rootfs(store, Unread(), changes=["RUN x"])
    assert json.dumps([r.id for r in store.list()]) == "[]"
