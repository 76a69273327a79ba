"""runtime.sync.Channel: the handshake's messages and fds over a socketpair."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from sampan.runtime.sync import MESSAGES, Channel, ChildFailed


@pytest.fixture
def pair() -> Iterator[tuple[Channel, Channel]]:
    a, b = Channel.pair()
    yield a, b
    for end in (a, b):
        end.close()


def test_pair_is_seqpacket_and_cloexec(pair: tuple[Channel, Channel]) -> None:
    a, b = pair
    for end in (a, b):
        assert not os.get_inheritable(end.fileno())
        sock = socket.socket(fileno=os.dup(end.fileno()))
        try:
            assert sock.type == socket.SOCK_SEQPACKET
            assert sock.family == socket.AF_UNIX
        finally:
            sock.close()


def test_send_recv_round_trip(pair: tuple[Channel, Channel]) -> None:
    a, b = pair
    a.send("pid", pid=1234)
    assert b.recv() == ({"t": "pid", "pid": 1234}, [])
    b.send("ack", state={"id": "box", "annotations": {"é": "☃"}})
    assert a.recv() == ({"t": "ack", "state": {"id": "box", "annotations": {"é": "☃"}}}, [])


def test_messages_keep_their_boundaries(pair: tuple[Channel, Channel]) -> None:
    a, b = pair
    a.send("idmap")
    a.send("hooks")
    a.send("ready")
    assert [b.recv()[0] for _ in range(3)] == [{"t": "idmap"}, {"t": "hooks"}, {"t": "ready"}]


def test_unknown_kind_is_refused_by_the_sender(pair: tuple[Channel, Channel]) -> None:
    with pytest.raises(AssertionError):
        pair[0].send("bogus")


def test_fds_are_passed(pair: tuple[Channel, Channel]) -> None:
    a, b = pair
    r, w = os.pipe()
    try:
        a.send("console", fds=[w])
        msg, fds = b.recv()
        assert msg == {"t": "console"}
        assert len(fds) == 1
        received = fds[0]
        assert received != w
        assert not os.get_inheritable(received)  # MSG_CMSG_CLOEXEC
        os.write(received, b"through the passed fd")
        os.close(received)
        os.close(w)
        w = -1
        assert os.read(r, 100) == b"through the passed fd"
        assert os.read(r, 100) == b""  # every write end is closed
    finally:
        os.close(r)
        if w != -1:
            os.close(w)


def test_several_fds(pair: tuple[Channel, Channel]) -> None:
    a, b = pair
    pipes = [os.pipe() for _ in range(3)]
    try:
        a.send("console", fds=[w for _, w in pipes], note="three")
        msg, fds = b.recv()
        assert msg == {"t": "console", "note": "three"}
        assert len(fds) == 3
        for (r, _), fd in zip(pipes, fds, strict=True):
            os.write(fd, b"x")
            os.close(fd)
            assert os.read(r, 1) == b"x"
    finally:
        for r, w in pipes:
            os.close(r)
            os.close(w)


def test_expect_returns_the_message(pair: tuple[Channel, Channel]) -> None:
    a, b = pair
    a.send("ready", extra=1)
    assert b.expect("ready") == {"t": "ready", "extra": 1}


def test_expect_closes_unwanted_fds(pair: tuple[Channel, Channel]) -> None:
    a, b = pair
    r, w = os.pipe()
    try:
        a.send("ready", fds=[w])
        os.close(w)
        w = -1
        b.expect("ready")
        assert os.read(r, 1) == b""  # the received copy was closed too
    finally:
        os.close(r)
        if w != -1:
            os.close(w)


def test_expect_raises_the_child_error(pair: tuple[Channel, Channel]) -> None:
    a, b = pair
    a.send("error", msg="mount /proc: Operation not permitted")
    with pytest.raises(ChildFailed) as info:
        b.expect("ready")
    assert str(info.value) == "mount /proc: Operation not permitted"


def test_expect_error_without_a_message(pair: tuple[Channel, Channel]) -> None:
    a, b = pair
    a.send("error")
    with pytest.raises(ChildFailed, match=r"^unknown error$"):
        b.expect("ready")


def test_expect_on_eof() -> None:
    a, b = Channel.pair()
    try:
        a.close()
        assert b.recv() == (None, [])
        with pytest.raises(ChildFailed) as info:
            b.expect("ready")
        assert str(info.value) == "the other side exited while we waited for 'ready'"
    finally:
        b.close()


def test_expect_wrong_kind(pair: tuple[Channel, Channel]) -> None:
    a, b = pair
    a.send("hooks")
    with pytest.raises(ChildFailed, match=r"^protocol error: expected 'ready', got 'hooks'$"):
        b.expect("ready")


def _raw(channel: Channel, data: bytes) -> None:
    channel.sock.send(data)


@pytest.mark.parametrize("data", [b'{"t": "bogus"}', b"[1, 2]", b'{"no": "kind"}'])
def test_recv_refuses_unknown_messages(pair: tuple[Channel, Channel], data: bytes) -> None:
    a, b = pair
    _raw(a, data)
    with pytest.raises(ChildFailed, match=r"^protocol error: unexpected message "):
        b.recv()


def test_every_documented_message_is_known() -> None:
    assert {"pid", "idmap", "hooks", "cgroup", "console", "ready", "error", "ack", "go"} == set(
        MESSAGES
    )


def test_peek_kind_looks_without_receiving() -> None:
    a, b = Channel.pair()
    try:
        assert a.peek_kind() is None  # nothing yet: no wait
        b.send("pid", pid=42)
        assert a.peek_kind() == "pid"
        assert a.peek_kind() == "pid"  # still there
        assert a.expect("pid")["pid"] == 42
        assert a.peek_kind() is None
    finally:
        a.close()
        b.close()
