"""IPAM arithmetic: pools parsed and checked, round-robin allocation, overlaps."""

from __future__ import annotations

import pytest

from sampan.errors import Conflict, InvalidArgument
from sampan.network.ipam import (
    Exhausted,
    Pool,
    first_free,
    overlaps,
    parse_cidr,
    parse_ip,
    to_ip,
)


def test_parse_and_print() -> None:
    assert to_ip(parse_ip("172.31.0.1")) == "172.31.0.1"
    assert parse_cidr("10.1.2.3/16") == (parse_ip("10.1.0.0"), 16)
    for bad in ("10.1.2", "10.1.2.256", "a.b.c.d", "10.1.2.3.4", "", "1.2.3.04444"):
        with pytest.raises(InvalidArgument, match="Gateway"):
            parse_ip(bad, "Gateway")
    for bad in ("10.0.0.0", "10.0.0.0/33", "10.0.0.0/x"):
        with pytest.raises(InvalidArgument, match="Subnet"):
            parse_cidr(bad, "Subnet")


def test_pool_defaults_and_checks() -> None:
    pool = Pool.parse("10.9.0.0/24")
    assert to_ip(pool.gateway) == "10.9.0.1"
    assert pool.cidr == "10.9.0.0/24"
    assert to_ip(pool.allocate(set())) == "10.9.0.2"  # network and gateway skipped
    with pytest.raises(InvalidArgument, match="IPRange"):
        Pool.parse("10.9.0.0/24", ip_range="10.8.0.0/25")
    with pytest.raises(InvalidArgument, match="Gateway"):
        Pool.parse("10.9.0.0/24", gateway="10.9.1.1")
    with pytest.raises(InvalidArgument, match="Gateway"):
        Pool.parse("10.9.0.0/24", gateway="10.9.0.255")  # broadcast
    with pytest.raises(InvalidArgument, match="too small"):
        Pool.parse("10.9.0.0/31")


def test_round_robin_never_reuses_until_wrapped() -> None:
    pool = Pool.parse("10.9.0.0/29")  # .1 gateway, .2-.6 usable, .7 broadcast
    taken: set[int] = set()
    last = 0
    got = []
    for _ in range(5):
        addr = pool.allocate(taken, last)
        taken.add(addr)
        last = addr
        got.append(to_ip(addr))
    assert got == [f"10.9.0.{n}" for n in range(2, 7)]
    with pytest.raises(Exhausted, match="no available IPv4 addresses"):
        pool.allocate(taken, last)
    taken.discard(parse_ip("10.9.0.3"))  # released: handed out again only after the wrap
    assert to_ip(pool.allocate(taken, last)) == "10.9.0.3"


def test_range_and_static() -> None:
    pool = Pool.parse("10.9.0.0/16", gateway="10.9.0.254", ip_range="10.9.5.0/24")
    assert to_ip(pool.allocate(set())) == "10.9.5.0"  # the range's first is a host address
    assert to_ip(pool.check_static("10.9.7.7", set())) == "10.9.7.7"  # static: the subnet
    with pytest.raises(Conflict, match="already in use"):
        pool.check_static("10.9.7.7", {parse_ip("10.9.7.7")})
    with pytest.raises(InvalidArgument, match="not a usable address"):
        pool.check_static("10.9.0.254", set())
    with pytest.raises(InvalidArgument, match="not a usable address"):
        pool.check_static("10.10.0.5", set())


def test_overlaps_and_first_free() -> None:
    assert overlaps(parse_cidr("10.0.0.0/8"), parse_cidr("10.9.0.0/16"))
    assert not overlaps(parse_cidr("10.1.0.0/16"), parse_cidr("10.2.0.0/16"))
    used = [parse_cidr("172.31.0.0/16"), parse_cidr("192.0.2.0/24")]
    assert first_free(["172.31.0.0/16", "172.30.0.0/16"], used) == "172.30.0.0/16"
    with pytest.raises(Exhausted):
        first_free(["172.31.0.0/16"], used)
