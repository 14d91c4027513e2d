#!/usr/bin/env python3
"""Writes the seed corpora of fuzz_net_tx and fuzz_net_rx (corpus/net_tx, corpus/net_rx).

Input layout: see net_fuzz_ring.h. Each seed is a valid chain layout or one step away
from an error path. Re-run after changing the layout or the seeds."""
import os
import struct

DATA = 0x3000
NEXT, WRITE, INDIRECT = 1, 2, 4
ABS, X256, WRAP = 0x20, 0x80, 0x40


def cfg(size_log2, mrg=False, event_idx=False, indirect=False):
    return (size_log2 << 4) | (1 if mrg else 0) | (2 if event_idx else 0) | (4 if indirect else 0)


def seed(config, avail_idx, descs, avail, data=b"", lens=(0, 0)):
    """descs: (gpa, len, flags, next); gpa a multiple of 8, from DATA unless flags has ABS."""
    size = 1 << (config >> 4)
    assert len(descs) <= size and len(avail) <= size
    out = struct.pack("<BHHH", config, avail_idx, lens[0], lens[1])
    descs = list(descs) + [(0, 0, 0, 0)] * (size - len(descs))
    for gpa, ln, fl, nx in descs:
        if not fl & ABS and (gpa or ln):
            assert gpa >= DATA
            gpa -= DATA
        assert gpa % 8 == 0
        out += struct.pack("<HHBB", gpa // 8, ln, fl, nx)
    avail = list(avail) + [0] * (size - len(avail))
    out += b"".join(struct.pack("<H", a) for a in avail)
    return out + data


def raw_desc(gpa, ln, fl, nx):
    return struct.pack("<QIHH", gpa, ln, fl, nx)


def frame(n, seed_byte=1):
    return bytes((seed_byte * 131 + i * 7) & 0xFF for i in range(n))


def tx_seeds():
    hdr = bytes(12)
    pkt = hdr + frame(60)
    d = {}
    # Header in its own descriptor, frame in a second; and header + frame in one.
    d["two-chains"] = seed(cfg(2), 2, [(DATA, 12, NEXT, 1), (DATA + 0x100, 60, 0, 0), (DATA + 0x200, 72, 0, 0)],
                           [0, 2], hdr + bytes(0x100 - 12) + frame(60) + bytes(0x100 - 60) + pkt)
    d["header-only"] = seed(cfg(1), 1, [(DATA, 12, 0, 0)], [0], hdr)
    d["no-header"] = seed(cfg(1), 1, [(DATA, 8, 0, 0)], [0], hdr)
    d["runt"] = seed(cfg(1), 1, [(DATA, 20, 0, 0)], [0], pkt)
    # 12 + 76800 bytes: over the 65535-byte frame limit.
    d["too-long"] = seed(cfg(1), 1, [(DATA, 12, NEXT, 1), (DATA, 300, X256, 0)], [0], pkt)
    # Exactly 65535 bytes of frame.
    d["max-frame"] = seed(cfg(2), 1, [(DATA, 12, NEXT, 1), (DATA, 255, X256 | NEXT, 2), (DATA, 255, 0, 0)],
                          [0], pkt)
    d["writable"] = seed(cfg(1), 1, [(DATA, 72, WRITE, 0)], [0], pkt)
    d["loop"] = seed(cfg(2), 1, [(DATA, 12, NEXT, 1), (DATA, 60, NEXT, 0)], [0], pkt)
    d["next-out-of-range"] = seed(cfg(2), 1, [(DATA, 12, NEXT, 9)], [0], pkt)
    d["head-out-of-range"] = seed(cfg(2), 1, [(DATA, 72, 0, 0)], [7], pkt)
    d["avail-far-ahead"] = seed(cfg(2), 200, [(DATA, 72, 0, 0)], [0, 0, 0, 0], pkt)
    d["wrapping-address"] = seed(cfg(1), 1, [(0, 72, WRAP | ABS, 0)], [0], pkt)
    d["past-ram"] = seed(cfg(1), 1, [(0x7FF00, 0xFFFF, X256 | ABS, 0)], [0], pkt)
    d["buffer-over-rings"] = seed(cfg(1), 1, [(0x1000, 0x2000, ABS, 0)], [0], pkt)
    # An indirect table of two descriptors in the data area, then the packet.
    table = raw_desc(DATA + 0x40, 12, NEXT, 1) + raw_desc(DATA + 0x80, 60, 0, 0)
    body = table + bytes(0x40 - len(table)) + hdr + bytes(0x40 - 12) + frame(60)
    d["indirect"] = seed(cfg(1, indirect=True), 1, [(DATA, 32, INDIRECT, 0)], [0], body)
    d["indirect-not-negotiated"] = seed(cfg(1), 1, [(DATA, 32, INDIRECT, 0)], [0], body)
    d["indirect-bad-length"] = seed(cfg(1, indirect=True), 1, [(DATA, 24, INDIRECT, 0)], [0], body)
    d["event-idx"] = seed(cfg(3, event_idx=True), 3, [(DATA, 72, 0, 0)] * 3, [0, 1, 2], pkt)
    d["zero-length"] = seed(cfg(2), 1, [(DATA, 0, NEXT, 1), (DATA, 72, NEXT, 2), (DATA, 0, 0, 0)], [0], pkt)
    # 256 single-descriptor frames.
    d["full-queue"] = seed(cfg(8), 256, [(DATA, 72, 0, 0)] * 256, list(range(256)), pkt)
    return d


def rx_seeds():
    d = {}
    w = WRITE
    d["mrg-spans"] = seed(cfg(2, mrg=True), 4, [(DATA + 0x400 * i, 1024, w, 0) for i in range(4)],
                          [0, 1, 2, 3], lens=(3000, 0))
    d["mrg-header-split"] = seed(cfg(3, mrg=True), 4,
                                 [(DATA, 11, w | NEXT, 1), (DATA + 16, 1013, w, 0)] +
                                 [(DATA + 0x400 * (i + 1), 1024, w, 0) for i in range(2)],
                                 [0, 2, 3], lens=(2500, 0))
    d["mrg-stall-midway"] = seed(cfg(2, mrg=True), 1, [(DATA, 1000, w, 0)], [0], lens=(2500, 0))
    d["mrg-never-fits"] = seed(cfg(2, mrg=True), 4, [(DATA + 16 * i, 16, w, 0) for i in range(4)],
                               [0, 1, 2, 3], lens=(200, 0))
    d["mrg-tiny-first"] = seed(cfg(2, mrg=True), 2, [(DATA, 8, w, 0), (DATA + 64, 256, w, 0)], [0, 1],
                               lens=(100, 0))
    d["mrg-readonly"] = seed(cfg(2, mrg=True), 2, [(DATA, 64, 0, 0), (DATA + 64, 256, w, 0)], [0, 1],
                             lens=(100, 0))
    d["mrg-two-frames"] = seed(cfg(2, mrg=True), 3, [(DATA + 0x800 * i, 0x800, w, 0) for i in range(3)],
                               [0, 1, 2], lens=(1500, 3000))
    d["mrg-jumbo"] = seed(cfg(5, mrg=True), 20, [(DATA + 0x1000 * i, 0x1000, w, 0) for i in range(20)],
                          list(range(20)), lens=(65535, 0))
    d["single-fits"] = seed(cfg(1), 1, [(DATA, 2048, w, 0)], [0], lens=(1000, 0))
    d["single-too-small"] = seed(cfg(1), 1, [(DATA, 512, w, 0)], [0], lens=(1000, 0))
    d["single-two-descs"] = seed(cfg(2), 1, [(DATA, 12, w | NEXT, 1), (DATA + 64, 1500, w, 0)], [0],
                                 lens=(1000, 60))
    d["no-buffers"] = seed(cfg(2, mrg=True), 0, [], [], lens=(60, 60))
    d["broken-ring"] = seed(cfg(2, mrg=True), 9, [(DATA, 1024, w, 0)], [0], lens=(60, 0))
    d["buffer-over-used-ring"] = seed(cfg(2, mrg=True), 1, [(0x1ff0, 0x100, w | ABS, 0)], [0], lens=(200, 0))
    d["event-idx"] = seed(cfg(2, mrg=True, event_idx=True), 2, [(DATA, 1024, w, 0), (DATA + 0x400, 1024, w, 0)],
                          [0, 1], lens=(60, 1500))
    return d


def write(dirname, seeds):
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", dirname)
    os.makedirs(path, exist_ok=True)
    for name, data in seeds.items():
        assert len(data) < 4096, name
        with open(os.path.join(path, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    write("net_tx", tx_seeds())
    write("net_rx", rx_seeds())
