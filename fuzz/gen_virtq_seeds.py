#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_virtq into fuzz/corpus/virtq/.

Each seed is a queue configuration plus a script of driver and device steps (the format
is described at the top of fuzz_virtq.c). Valid scripts give the fuzzer working chains
to mutate; near-valid ones sit next to each of the walker's error paths. Deterministic:
running it again rewrites the same bytes. Usage: fuzz/gen_virtq_seeds.py [out-dir]
"""
import os
import struct
import sys

NEXT, WRITE, INDIRECT = 1, 2, 4
F_INDIRECT, F_EVENT_IDX, F_LAYOUT = 16, 32, 64


def cfg(log2_size, indirect=True, event_idx=False, layout=None):
    b = log2_size | (F_INDIRECT if indirect else 0) | (F_EVENT_IDX if event_idx else 0)
    if layout is None:
        return bytes([b])
    return bytes([b | F_LAYOUT]) + struct.pack("<HHH", *layout)


def pop():
    return b"\x00"


def push(which, written):
    return b"\x01" + struct.pack("<BI", which, written)


def poke(off, data):
    return b"\x02" + struct.pack("<HB", off, len(data)) + data


def need_interrupt():
    return b"\x03"


def reset_enable():
    return bytes([3 | (31 << 3)])


def notify(on):
    return bytes([4 | ((1 if on else 0) << 3)])


def push_raw(head, written):
    return b"\x05" + struct.pack("<HI", head, written)


def avail(head):
    return b"\x06" + struct.pack("<H", head)


def desc(idx, addr, length, flags=0, nxt=0, indirect_area=False, rom=False, high=False, big=False):
    arg = (1 if indirect_area else 0) | (2 if rom else 0) | (4 if high else 0) | (8 if big else 0)
    return bytes([7 | (arg << 3)]) + struct.pack("<HHHBH", idx, addr, length, flags, nxt)


IND = 0x3000  # indirect area, relative to RAM
DATA = 0x8000

SEEDS = {
    # three-descriptor chain: header, payload, status; completed, then interrupt
    "direct": cfg(3) + desc(0, DATA, 16, NEXT, 1) + desc(1, DATA + 0x100, 512, NEXT, 2)
    + desc(2, DATA + 0x400, 1, WRITE) + avail(0) + pop() + push(0, 1) + need_interrupt() + pop(),
    # an indirect table with a readable and a writable entry
    "indirect": cfg(4) + desc(0, DATA, 8, NEXT, 1, indirect_area=True)
    + desc(1, DATA + 0x40, 64, WRITE, indirect_area=True) + desc(5, IND, 32, INDIRECT)
    + avail(5) + pop() + push(0, 100) + need_interrupt(),
    # many chains round the ring, with event index and notification toggles
    "event-idx": cfg(2, event_idx=True) + desc(0, DATA, 4, WRITE) + desc(1, DATA + 8, 4, WRITE)
    + poke(0x1000 + 4 + 2 * 4, struct.pack("<H", 2))
    + b"".join(avail(i % 2) + pop() + push(0, 4) + need_interrupt() for i in range(12))
    + notify(False) + avail(0) + notify(True) + pop() + pop(),
    # zero-length descriptors and a header-only chain
    "zero-length": cfg(3) + desc(0, DATA, 0, NEXT, 1) + desc(1, DATA, 16, 0)
    + desc(2, DATA, 0, WRITE) + avail(0) + avail(2) + pop() + pop() + push(0, 9) + push(0, 9),
    # error paths, one step from the valid ones
    "loop": cfg(3) + desc(0, DATA, 4, NEXT, 1) + desc(1, DATA, 4, NEXT, 0) + avail(0) + pop() + pop(),
    "next-out-of-range": cfg(3) + desc(0, DATA, 4, NEXT, 8) + avail(0) + pop(),
    "head-out-of-range": cfg(3) + desc(0, DATA, 4) + avail(8) + pop(),
    "avail-jump": cfg(3) + desc(0, DATA, 4) + poke(0x1002, struct.pack("<H", 9)) + pop(),
    "nested-indirect": cfg(3) + desc(0, IND + 0x100, 16, INDIRECT, indirect_area=True)
    + desc(0, IND, 16, INDIRECT) + avail(0) + pop(),
    "indirect-len": cfg(3) + desc(0, DATA, 4, indirect_area=True) + desc(0, IND, 24, INDIRECT)
    + avail(0) + pop(),
    "indirect-no-feature": cfg(3, indirect=False) + desc(0, DATA, 4, indirect_area=True)
    + desc(0, IND, 16, INDIRECT) + avail(0) + pop(),
    "read-after-write": cfg(3) + desc(0, DATA, 4, WRITE | NEXT, 1) + desc(1, DATA, 4) + avail(0) + pop(),
    "rom-write": cfg(3) + desc(0, 0, 16, 0, rom=True) + desc(1, 0, 16, WRITE, rom=True)
    + avail(0) + avail(1) + pop() + pop(),
    "wrap-2-64": cfg(3) + desc(0, 0x800, 0x1000, high=True) + avail(0) + pop(),
    "past-ram": cfg(3) + desc(0, 0xff00, 2, big=True) + avail(0) + pop(),
    "resubmit": cfg(3) + desc(0, DATA, 4) + avail(0) + avail(0) + pop() + pop() + push_raw(0, 0),
    "push-twice": cfg(3) + desc(0, DATA, 4, WRITE) + avail(0) + pop() + push_raw(0, 4)
    + push_raw(0, 4) + push_raw(9, 0),
    "reset": cfg(3, event_idx=True) + desc(0, DATA, 4) + avail(0) + pop() + reset_enable()
    + push_raw(0, 0) + avail(0) + pop() + push(0, 0),
    "bad-layout": cfg(3, layout=(0x8, 0x1001, 0x2002)) + pop(),
    "tight-layout": cfg(3, layout=(0xff80, 0x1000, 0x2000)) + desc(0, DATA, 4) + avail(0) + pop(),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                            "corpus", "virtq")
    os.makedirs(out, exist_ok=True)
    for name, blob in SEEDS.items():
        assert len(blob) < 4096, name
        with open(os.path.join(out, name), "wb") as f:
            f.write(blob)


if __name__ == "__main__":
    main()
