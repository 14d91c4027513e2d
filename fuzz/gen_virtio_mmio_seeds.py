#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_virtio_mmio into fuzz/corpus/virtio_mmio/.

Each seed is a device selector byte and a script of register accesses and guest-memory
writes (the format is described at the top of fuzz_virtio_mmio.c). Valid driver
sessions give the fuzzer a live device to mutate; near-valid ones sit next to each
refusal path of the state machine. Deterministic: running it again rewrites the same
bytes. Usage: fuzz/gen_virtio_mmio_seeds.py [out-dir]
"""
import os
import struct
import sys

PROBE, RNG, RNG_SMALL = 0, 1, 3

# Index into regs[] of fuzz_virtio_mmio.c.
(DEV_FEAT_SEL, DRV_FEAT, DRV_FEAT_SEL, QSEL, QNUM, QREADY, QNOTIFY, IACK, STATUS,
 DESC_LO, DESC_HI, AVAIL_LO, AVAIL_HI, USED_LO, USED_HI, SHM_SEL, CFG0, CFG4, CFG20) = range(19)

# Register offsets for the raw WRITE/READ ops.
MAGIC, DEV_FEAT, QNUM_MAX, ISR, STATUS_OFF, GEN, CONFIG = 0x0, 0x10, 0x34, 0x60, 0x70, 0xfc, 0x100

ACK, DRIVER, DRIVER_OK, FEATURES_OK = 1, 2, 4, 8
NEXT, WRITE, INDIRECT = 1, 2, 4
F_INDIRECT, F_EVENT_IDX = 1 << 28, 1 << 29

DESC, AVAIL, USED = 0x1000, 0x1100, 0x1200
IN_BUF, OUT_BUF, TABLE = 0x2000, 0x3000, 0x4000


def reg(r, v):
    return struct.pack("<BBI", 5, r, v & 0xffffffff)


def write(off, size_code, v):
    return struct.pack("<BHBQ", 0, off, size_code, v)


def read(off, size_code=2):
    return struct.pack("<BHB", 1, off, size_code)


def mem(gpa, data):
    out = b""
    while data:  # at most 255 bytes per op
        chunk, data = data[:255], data[255:]
        out += struct.pack("<BHB", 2, gpa, len(chunk)) + chunk
        gpa += len(chunk)
    return out


def resched():
    return b"\x03"


def device(what):
    return struct.pack("<BB", 4, what)


def desc(addr, length, flags, nxt):
    return struct.pack("<QIHH", addr, length, flags, nxt)


def negotiate(lo, hi=1):
    return (reg(STATUS, 0) + reg(STATUS, ACK) + reg(STATUS, ACK | DRIVER) +
            reg(DEV_FEAT_SEL, 0) + read(DEV_FEAT) + reg(DEV_FEAT_SEL, 1) + read(DEV_FEAT) +
            reg(DRV_FEAT_SEL, 0) + reg(DRV_FEAT, lo) + reg(DRV_FEAT_SEL, 1) + reg(DRV_FEAT, hi) +
            reg(STATUS, ACK | DRIVER | FEATURES_OK) + read(STATUS_OFF))


def queue(q=0, num=8, d=DESC, a=AVAIL, u=USED):
    return (reg(QSEL, q) + read(QNUM_MAX) + reg(QNUM, num) + reg(DESC_LO, d) + reg(DESC_HI, 0) +
            reg(AVAIL_LO, a) + reg(AVAIL_HI, 0) + reg(USED_LO, u) + reg(USED_HI, 0) + reg(QREADY, 1))


def driver_ok():
    return reg(STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK) + read(STATUS_OFF)


def avail(heads, idx=None, flags=0):
    ring = b"".join(struct.pack("<H", h) for h in heads)
    return mem(AVAIL, struct.pack("<HH", flags, len(heads) if idx is None else idx) + ring)


def start(features=0x3):
    return negotiate(features) + queue() + driver_ok()


def echo_request():
    return (mem(DESC, desc(IN_BUF, 16, NEXT, 1) + desc(OUT_BUF, 32, WRITE, 0)) +
            mem(IN_BUF, bytes(range(16))) + avail([0]) + reg(QNOTIFY, 0) + read(ISR) + reg(IACK, 1))


SEEDS = {
    "probe_basic": bytes([PROBE]) + start() + echo_request(),
    "rng_basic": bytes([RNG]) + negotiate(0) + queue() + driver_ok() +
    mem(DESC, desc(OUT_BUF, 64, WRITE, 0)) + avail([0]) + reg(QNOTIFY, 0) + read(ISR),
    "rng_small_big_buffer": bytes([RNG_SMALL]) + negotiate(0) + queue() + driver_ok() +
    mem(DESC, desc(0x8000, 0x8000, WRITE, 0)) + avail([0]) + reg(QNOTIFY, 0),
    "broken_head": bytes([PROBE]) + start() + avail([200]) + reg(QNOTIFY, 0) + read(STATUS_OFF) +
    reg(QNOTIFY, 0) + reg(STATUS, 0) + start() + echo_request(),
    "no_version_1": bytes([PROBE]) + negotiate(0x3, hi=0) + queue() + driver_ok(),
    "feature_not_offered": bytes([PROBE]) + negotiate(0x83) + queue() + driver_ok(),
    "transport_bit_not_offered": bytes([PROBE]) + negotiate(0x3, hi=1 | 1 << 8) + driver_ok(),
    "refused_activation": bytes([PROBE]) + start(0xf) + echo_request() + reg(STATUS, 0),
    "driver_ok_first": bytes([PROBE]) + reg(STATUS, ACK | DRIVER | DRIVER_OK) + queue() +
    reg(QNOTIFY, 0) + negotiate(0x3) + driver_ok(),
    "rewrite_after_driver_ok": bytes([PROBE]) + start() + echo_request() +
    reg(QSEL, 0) + reg(QNUM, 4) + reg(DESC_LO, 0x5000) + reg(AVAIL_LO, 0x5100) +
    reg(USED_LO, 0x5200) + reg(QREADY, 0) + reg(STATUS, ACK) + avail([1], idx=2) + reg(QNOTIFY, 0),
    "features_after_ok": bytes([PROBE]) + negotiate(0x1) + reg(DRV_FEAT_SEL, 0) + reg(DRV_FEAT, 0xff) +
    reg(STATUS, ACK | DRIVER) + queue() + driver_ok(),
    "config_sizes": bytes([PROBE]) + b"".join(read(CONFIG + off, c) for off, c in
                                              [(0, 0), (1, 0), (2, 1), (4, 2), (8, 3), (16, 3),
                                               (20, 2), (22, 2), (23, 0), (24, 0), (0xef8, 3)]) +
    write(CONFIG, 0, 0xaa) + write(CONFIG + 2, 1, 0xbbcc) + write(CONFIG + 4, 2, 0x11223344) +
    write(CONFIG + 16, 3, 0x0102030405060708) + write(CONFIG + 20, 3, 1) + read(GEN) +
    device(0) + read(GEN) + start() + device(0) + read(ISR) + reg(IACK, 3),
    "odd_sizes": bytes([PROBE]) + read(MAGIC, 0) + read(MAGIC, 1) + read(MAGIC, 3) + read(0x71, 2) +
    write(STATUS_OFF, 0, 0xff) + write(STATUS_OFF, 3, 0xf) + read(STATUS_OFF) +
    read(0xffc, 2) + write(0xffc, 2, 1),
    "bad_queue_sizes": bytes([PROBE]) + negotiate(0x3) + queue(num=3) + queue(num=1024) +
    queue(num=0) + queue(d=DESC + 8) + queue(q=1, d=0xfff0) + queue(q=2, d=0x20000) + driver_ok() +
    reg(STATUS, 0) + start(),
    "bad_selectors": bytes([PROBE]) + reg(QSEL, 0xffffffff) + read(QNUM_MAX) + reg(QNUM, 8) +
    reg(QREADY, 1) + reg(QSEL, 3) + read(QNUM_MAX) + start() + reg(QNOTIFY, 0xffffffff) +
    reg(QNOTIFY, 3) + reg(QNOTIFY, 0x10000) + reg(DEV_FEAT_SEL, 7) + read(DEV_FEAT) + reg(SHM_SEL, 1) +
    read(0xb0) + read(0xb4),
    "loop_chain": bytes([PROBE]) + start() + mem(DESC, desc(IN_BUF, 16, NEXT, 1) +
                                                 desc(IN_BUF, 16, NEXT, 0)) + avail([0]) +
    reg(QNOTIFY, 0),
    "readable_after_writable": bytes([PROBE]) + start() + mem(DESC, desc(IN_BUF, 16, NEXT, 1) +
                                                              desc(OUT_BUF, 16, NEXT | WRITE, 0)) +
    avail([0]) + reg(QNOTIFY, 0),
    "indirect": bytes([PROBE]) + start(0x3 | F_INDIRECT) +
    mem(TABLE, desc(IN_BUF, 16, NEXT, 1) + desc(OUT_BUF, 32, WRITE, 0)) +
    mem(DESC, desc(TABLE, 32, INDIRECT, 0)) + mem(IN_BUF, b"indirect-request") + avail([0]) +
    reg(QNOTIFY, 0),
    "event_idx_full_ring": bytes([PROBE]) + start(0x3 | F_EVENT_IDX) +
    mem(DESC, b"".join(desc(IN_BUF + 16 * i, 16, 0, 0) for i in range(8))) +
    avail(list(range(8))) + reg(QNOTIFY, 0) + avail(list(range(8)), idx=16) + reg(QNOTIFY, 0) +
    resched() + resched() + read(ISR),
    "fail_then_reset": bytes([PROBE]) + start() + device(1) + reg(QNOTIFY, 0) + resched() +
    read(STATUS_OFF) + reg(STATUS, 0) + start() + echo_request() + device(6),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "virtio_mmio")
    os.makedirs(out, exist_ok=True)
    for name, data in sorted(SEEDS.items()):
        assert len(data) < 4096, name
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
