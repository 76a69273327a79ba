"""DNS messages on the wire (RFC 1035, EDNS of RFC 6891): the few shapes the embedded server needs.

The server reads one question from a query, answers names it knows and relays
the rest byte for byte, so this module parses exactly that: the header, the
question (with compression pointers followed safely: each must point before
the name it continues, so a loop cannot exist) and an OPT record in the
additional section (the client's UDP size).  It builds replies that echo the
question and carry A or PTR records whose owner is a pointer to it (0xC00C).

    query = parse_query(packet)            # QueryError(rcode) if malformed
    reply = build_reply(query, NOERROR, [(TYPE_A, inet_aton("172.20.0.2"))], ttl=600)
    reply = error_reply(packet, FORMERR)   # a header only, for what cannot be parsed

Names keep their raw label bytes (a reply echoes the client's spelling);
``Query.name`` is the lower-cased dotted form used for lookups.
"""

from __future__ import annotations

import struct

__all__ = [
    "BADVERS",
    "CLASS_ANY",
    "CLASS_IN",
    "FORMERR",
    "NOERROR",
    "NOTIMP",
    "NXDOMAIN",
    "REFUSED",
    "SERVFAIL",
    "TYPE_A",
    "TYPE_AAAA",
    "TYPE_ANY",
    "TYPE_OPT",
    "TYPE_PTR",
    "Query",
    "QueryError",
    "build_reply",
    "encode_name",
    "error_reply",
    "parse_query",
    "ptr_address",
    "read_name",
    "reply_matches",
]

# Record types and classes.
TYPE_A = 1
TYPE_PTR = 12
TYPE_AAAA = 28
TYPE_OPT = 41
TYPE_ANY = 255
CLASS_IN = 1
CLASS_ANY = 255

# Response codes.
NOERROR = 0
FORMERR = 1
SERVFAIL = 2
NXDOMAIN = 3
NOTIMP = 4
REFUSED = 5
BADVERS = 16  # extended (EDNS) rcode: high bits in the OPT record

# Header flags.
QR = 0x8000
AA = 0x0400
TC = 0x0200
RD = 0x0100
RA = 0x0080
OPCODE_MASK = 0x7800

HEADER = struct.Struct("!HHHHHH")
_TYPE_CLASS = struct.Struct("!HH")
_RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength
_ANSWER_HEAD = struct.Struct("!HHHIH")  # owner pointer, type, class, ttl, rdlength

MAX_NAME = 255  # bytes of a name on the wire, labels and lengths included
MAX_UDP = 512  # a reply's size limit without EDNS
EDNS_UDP = 1232  # the UDP size we accept and advertise (the DNS flag day figure)
_POINTER_TO_QUESTION = 0xC00C  # the question's name is always at offset 12


class QueryError(Exception):
    """A query that gets an error rcode (FORMERR, NOTIMP), or no reply at all (rcode None)."""

    def __init__(self, rcode: int | None, reason: str) -> None:
        super().__init__(reason)
        self.rcode = rcode


class Query:
    """One parsed query: header fields, the question, the client's EDNS parameters."""

    __slots__ = ("edns", "edns_version", "end", "flags", "ident", "labels", "qclass", "qtype")

    def __init__(
        self,
        ident: int,
        flags: int,
        labels: tuple[bytes, ...],
        qtype: int,
        qclass: int,
        end: int,
        edns: int | None = None,
        edns_version: int = 0,
    ) -> None:
        self.ident = ident
        self.flags = flags
        self.labels = labels  # raw, as the client spelled them
        self.qtype = qtype
        self.qclass = qclass
        self.end = end  # offset just past the question
        self.edns = edns  # the client's UDP payload size if it sent an OPT record
        self.edns_version = edns_version  # 0 is the only one there is (BADVERS otherwise)

    @property
    def name(self) -> str:
        """The dotted name, ASCII lower-cased, without the trailing dot ("" for the root)."""
        return b".".join(self.labels).lower().decode("latin-1")

    @property
    def max_udp(self) -> int:
        """How large a UDP reply to this query may be."""
        if self.edns is None:
            return MAX_UDP
        return max(MAX_UDP, min(self.edns, EDNS_UDP))

    def __repr__(self) -> str:
        return f"Query(id={self.ident}, name={self.name!r}, type={self.qtype})"


def read_name(data: bytes, offset: int) -> tuple[tuple[bytes, ...], int]:
    """The labels of the name at OFFSET, and the offset just past it where it was written.

    A compression pointer must point strictly before the start of the labels
    it continues; the chain of starts decreases, so it ends.  Raises
    QueryError(FORMERR) for a name that runs off the end, is too long, uses a
    reserved label type or points forwards.
    """
    labels: list[bytes] = []
    size = 1
    end = -1
    start = pos = offset
    length = len(data)
    while True:
        if pos >= length:
            raise QueryError(FORMERR, "name runs past the end of the message")
        n = data[pos]
        if n == 0:
            pos += 1
            break
        kind = n & 0xC0
        if kind == 0xC0:
            if pos + 1 >= length:
                raise QueryError(FORMERR, "compression pointer runs past the end")
            target = ((n & 0x3F) << 8) | data[pos + 1]
            if target >= start:
                raise QueryError(FORMERR, "compression pointer does not point backwards")
            if end < 0:
                end = pos + 2
            start = pos = target
            continue
        if kind:
            raise QueryError(FORMERR, f"reserved label type 0x{kind:02x}")
        size += n + 1
        if size > MAX_NAME:
            raise QueryError(FORMERR, "name longer than 255 bytes")
        if pos + 1 + n > length:
            raise QueryError(FORMERR, "label runs past the end of the message")
        labels.append(data[pos + 1 : pos + 1 + n])
        pos += 1 + n
    return tuple(labels), (end if end >= 0 else pos)


def encode_name(labels: tuple[bytes, ...] | list[bytes]) -> bytes:
    """LABELS uncompressed, ending with the root label."""
    out = bytearray()
    for label in labels:
        out.append(len(label))
        out += label
    out.append(0)
    return bytes(out)


def _read_edns(data: bytes, pos: int, count: int) -> tuple[int, int] | None:
    """(UDP size, version) of the OPT record among COUNT records at POS, None without one."""
    found: tuple[int, int] | None = None
    for _ in range(count):
        labels, pos = read_name(data, pos)
        if pos + _RR_FIXED.size > len(data):
            raise QueryError(FORMERR, "additional record runs past the end")
        rtype, rclass, ttl, rdlength = _RR_FIXED.unpack_from(data, pos)
        pos += _RR_FIXED.size + rdlength
        if pos > len(data):
            raise QueryError(FORMERR, "additional record data runs past the end")
        if rtype != TYPE_OPT:
            continue
        if found is not None or labels:
            raise QueryError(FORMERR, "more than one OPT record, or one not at the root")
        found = (rclass, (ttl >> 16) & 0xFF)
    return found


def parse_query(data: bytes) -> Query:
    """The query in DATA; QueryError with the rcode to answer (None: send nothing).

    No reply for what is too short to carry an id or is itself a response
    (answering those could start a loop between two servers); NOTIMP for an
    opcode other than QUERY; FORMERR for a question count other than one, a
    malformed question or a malformed additional section.
    """
    if len(data) < HEADER.size:
        raise QueryError(None, "shorter than a DNS header")
    ident, flags, qdcount, ancount, nscount, arcount = HEADER.unpack_from(data)
    if flags & QR:
        raise QueryError(None, "a response, not a query")
    if flags & OPCODE_MASK:
        raise QueryError(NOTIMP, f"opcode {(flags & OPCODE_MASK) >> 11} is not QUERY")
    if qdcount != 1:
        raise QueryError(FORMERR, f"{qdcount} questions (one expected)")
    labels, pos = read_name(data, HEADER.size)
    if pos + _TYPE_CLASS.size > len(data):
        raise QueryError(FORMERR, "question runs past the end of the message")
    qtype, qclass = _TYPE_CLASS.unpack_from(data, pos)
    end = pos + _TYPE_CLASS.size
    edns = _read_edns(data, end, arcount) if arcount and not ancount and not nscount else None
    if edns is None:
        return Query(ident, flags, labels, qtype, qclass, end)
    return Query(ident, flags, labels, qtype, qclass, end, edns[0], edns[1])


def _opt_record(ext_rcode: int) -> bytes:
    return b"\x00" + _RR_FIXED.pack(TYPE_OPT, EDNS_UDP, (ext_rcode & 0xFF) << 24, 0)


def build_reply(
    query: Query,
    rcode: int,
    answers: list[tuple[int, bytes]] | tuple[()] = (),
    ttl: int = 0,
    authoritative: bool = True,
    limit: int = 0xFFFF,
) -> bytes:
    """A reply to QUERY: its question echoed, then ANSWERS (type, rdata) owned by its name.

    Answers that would take the reply past LIMIT bytes are left out and the
    TC bit set (the client retries over TCP).  An OPT record is added when the
    query had one (RFC 6891 asks it), carrying an extended rcode's high bits.
    """
    question = encode_name(query.labels) + _TYPE_CLASS.pack(query.qtype, query.qclass)
    opt = _opt_record(rcode >> 4) if query.edns is not None or rcode > 15 else b""
    flags = QR | (query.flags & (OPCODE_MASK | RD)) | RA | (rcode & 0xF)
    if authoritative:
        flags |= AA
    body = bytearray(question)
    room = limit - HEADER.size - len(question) - len(opt)
    count = 0
    for rtype, rdata in answers:
        record = _ANSWER_HEAD.pack(_POINTER_TO_QUESTION, rtype, CLASS_IN, ttl, len(rdata)) + rdata
        if len(record) > room:
            flags |= TC
            break
        body += record
        room -= len(record)
        count += 1
    header = HEADER.pack(query.ident, flags, 1, count, 0, 1 if opt else 0)
    return header + bytes(body) + opt


def error_reply(data: bytes, rcode: int) -> bytes:
    """A header-only reply with RCODE to the query in DATA (at least a header's length).

    For a query that cannot be parsed (FORMERR) or is not understood (NOTIMP)
    there is no question to echo; resolvers accept these without one.
    """
    ident, flags = struct.unpack_from("!HH", data)
    flags = QR | (flags & (OPCODE_MASK | RD)) | RA | (rcode & 0xF)
    return HEADER.pack(ident, flags, 0, 0, 0, 0)


def reply_matches(reply: bytes, query: Query, ident: int) -> bool:
    """Whether REPLY answers QUERY sent with id IDENT: same id, a response, same question.

    A reply without a question (FORMERR and the like) matches on its id alone.
    """
    if len(reply) < HEADER.size:
        return False
    rid, flags, qdcount = struct.unpack_from("!HHH", reply)
    if rid != ident or not flags & QR:
        return False
    if qdcount == 0:
        return True
    if qdcount != 1:
        return False
    try:
        labels, pos = read_name(reply, HEADER.size)
    except QueryError:
        return False
    if pos + _TYPE_CLASS.size > len(reply):
        return False
    if _TYPE_CLASS.unpack_from(reply, pos) != (query.qtype, query.qclass):
        return False
    return [label.lower() for label in labels] == [label.lower() for label in query.labels]


def ptr_address(name: str) -> str | None:
    """The IPv4 address of a reverse name ("4.3.2.1.in-addr.arpa" -> "1.2.3.4"), else None."""
    if not name.endswith(".in-addr.arpa"):
        return None
    parts = name[: -len(".in-addr.arpa")].split(".")
    if len(parts) != 4:
        return None
    for part in parts:
        if not (part.isdigit() and part.isascii() and len(part) <= 3 and int(part) < 256):
            return None
        if len(part) > 1 and part[0] == "0":
            return None
    return ".".join(reversed(parts))
