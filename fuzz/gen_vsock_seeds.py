#!/usr/bin/env python3
"""Writes fuzz/corpus/vsock_packet/: seeds for fuzz_vsock_packet.c (record format in its
header comment). Each seed is a short conversation: valid ones (guest and host
connections carrying data, credit updates, shutdowns) and ones next to each error path
(bad op, len beyond the chain, wrong CIDs, credit overrun, broken handshakes)."""
import os
import struct

CID = 3
HOST = 2
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "vsock_packet")

REQUEST, RESPONSE, RST, SHUTDOWN, RW, CREDIT_UPDATE, CREDIT_REQUEST = range(1, 8)


def hdr(op, src_port, dst_port, length=0, src_cid=CID, dst_cid=HOST, typ=1, flags=0,
        buf_alloc=65536, fwd_cnt=0):
    return struct.pack("<QQIIIHHIII", src_cid, dst_cid, src_port, dst_port, length, typ, op,
                       flags, buf_alloc, fwd_cnt)


def pkt(h, payload=b"", segs=None, shape_extra=0):
    """Record 0: a guest packet of header + payload, split into segs (lengths)."""
    body = h + payload
    if segs is None:
        segs = [len(h), len(payload)] if payload else [len(h)]
    shape = (len(segs) - 1) | shape_extra
    rec = bytes([0, shape]) + b"".join(struct.pack("<H", s) for s in segs)
    if shape_extra & 4:
        rec += struct.pack("<H", 64)  # the writable segment
    return rec + struct.pack("<H", len(body)) + body


def rx(*sizes):
    """Record 2: post rx buffers (bit 15 of a size splits header and payload)."""
    return bytes([2, len(sizes)]) + b"".join(struct.pack("<H", s) for s in sizes)


def host(op, data=b""):
    """Record 1: host activity on socket (op & 7); bit 3 writes data."""
    rec = bytes([1, op])
    if op & 8:
        rec += struct.pack("<H", len(data)) + data
    return rec


def connect(line):
    """Record 3: a host connection sending `line` as its handshake."""
    return bytes([3, len(line)]) + line


def seeds():
    data = bytes(range(256)) * 8
    yield "guest-connect-send", (
        rx(4096, 4096, 4096) + pkt(hdr(REQUEST, 100, 1)) + host(0)
        + pkt(hdr(RW, 100, 1, len(data)), data) + host(16) + host(0)
        + pkt(hdr(CREDIT_REQUEST, 100, 1)) + pkt(hdr(SHUTDOWN, 100, 1, flags=3)) + host(16))
    yield "guest-connect-recv", (
        rx(4096, 0x8000 | 8192, 4096, 100) + pkt(hdr(REQUEST, 101, 4, buf_alloc=3000))
        + host(8, data) + host(0) + rx(4096, 4096)
        + pkt(hdr(CREDIT_UPDATE, 101, 4, buf_alloc=3000, fwd_cnt=3000)) + host(0)
        + host(64) + host(0) + rx(4096))
    yield "guest-connect-pending", (
        rx(4096, 4096) + pkt(hdr(REQUEST, 102, 2)) + host(0) + pkt(hdr(RW, 102, 2, 10), b"x" * 10))
    yield "guest-connect-refused", rx(4096) + pkt(hdr(REQUEST, 103, 3))
    yield "host-connect", (
        rx(4096, 4096, 4096) + connect(b"CONNECT 5000\n") + host(0)
        + pkt(hdr(RESPONSE, 5000, 1 << 30)) + host(16) + host(8, b"hello guest") + host(0)
        + rx(4096) + pkt(hdr(RW, 5000, 1 << 30, 5), b"hello"))
    yield "host-connect-pipelined", (
        rx(4096, 4096) + connect(b"CONNECT 7\r\nearly data") + host(0)
        + pkt(hdr(RESPONSE, 7, 1 << 30, buf_alloc=4)) + host(0) + rx(4096, 4096))
    yield "host-connect-bad", (
        rx(4096) + connect(b"CONNECT x\n") + connect(b"CONNECT 4294967295\n")
        + connect(b"A" * 40) + connect(b"CONNECT 12") + host(64) + host(0))
    yield "host-connect-rst", (
        rx(4096, 4096) + connect(b"CONNECT 9\n") + host(0) + pkt(hdr(RST, 9, 1 << 30)) + host(16))
    yield "malformed", (
        rx(4096, 4096, 4096, 4096, 4096, 4096, 4096, 4096)
        + pkt(hdr(99, 200, 1)) + pkt(hdr(RW, 201, 1, 100000), b"x" * 10)
        + pkt(hdr(REQUEST, 202, 1, dst_cid=77)) + pkt(hdr(REQUEST, 203, 1, typ=2))
        + pkt(hdr(REQUEST, 204, 1, src_cid=9)) + pkt(hdr(REQUEST, 205, 1)[:20])
        + pkt(hdr(RST, 206, 1)) + pkt(hdr(REQUEST, 207, 1, 4), b"abcd")
        + pkt(hdr(CREDIT_UPDATE, 208, 1)) + pkt(hdr(RW, 209, 1, 300000), b"", segs=[44, 20000], shape_extra=8))
    yield "overrun", (
        rx(4096, 4096) + pkt(hdr(REQUEST, 300, 1)) + host(0)
        + b"".join(pkt(hdr(RW, 300, 1, 60000), b"", segs=[44, 60000]) for _ in range(6)) + host(16))
    yield "starved", (
        pkt(hdr(REQUEST, 400, 1)) + pkt(hdr(REQUEST, 401, 4)) + pkt(hdr(REQUEST, 402, 7))
        + pkt(hdr(REQUEST, 403, 10)) + pkt(hdr(REQUEST, 404, 13)) + host(8, data) + host(0)
        + rx(10, 20, 44, 4096))
    yield "lying-credit", (
        rx(4096, 4096, 4096) + pkt(hdr(REQUEST, 500, 1, buf_alloc=100, fwd_cnt=0xfffffff0))
        + host(8, data) + host(0) + pkt(hdr(CREDIT_UPDATE, 500, 1, buf_alloc=0xffffffff, fwd_cnt=5))
        + host(0) + rx(4096, 4096))


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, blob in seeds():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(blob)


if __name__ == "__main__":
    main()
