#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_blk_request into fuzz/corpus/blk_request/.

Input layout (see fuzz/fuzz_blk_request.c): disk flags byte, segment count, 5 bytes per
segment (u16 offset into guest RAM, u16 length, u8 writable), then the initial guest RAM.
Each seed is one request of each type, valid or one field away from an error path.
Deterministic. Usage: fuzz/gen_blk_request_seeds.py [out-dir]
"""
import os
import struct
import sys

RO, DIRECT, DISCARD, WZ, WTHROUGH = 1, 2, 4, 8, 16
T_IN, T_OUT, T_FLUSH, T_GET_ID, T_DISCARD, T_WZ = 0, 1, 4, 8, 11, 13
HDR, STATUS, DATA = 0x0, 0x20, 0x40


def hdr(t, sector=0):
    return struct.pack("<IIQ", t, 0, sector)


def ranges(*rs):
    return b"".join(struct.pack("<QII", s, n, f) for s, n, f in rs)


def seed(flags, segs, ram):
    """segs: (offset, length, writable); ram: {offset: bytes}."""
    out = bytes([flags, len(segs)])
    for off, ln, w in segs:
        out += struct.pack("<HHB", off, ln, 1 if w else 0)
    size = max([o + len(b) for o, b in ram.items()] + [0])
    mem = bytearray(size)
    for o, b in ram.items():
        mem[o:o + len(b)] = b
    return out + bytes(mem)


def pattern(n, k):
    return bytes((k + 7 * i) & 0xFF for i in range(n))


SEEDS = {
    "out": seed(0, [(HDR, 16, 0), (DATA, 1024, 0), (STATUS, 1, 1)],
                {HDR: hdr(T_OUT, 3), DATA: pattern(1024, 1)}),
    "out-writethrough": seed(WTHROUGH, [(HDR, 16, 0), (DATA, 512, 0), (STATUS, 1, 1)],
                             {HDR: hdr(T_OUT, 63), DATA: pattern(512, 2)}),
    "out-readonly": seed(RO, [(HDR, 16, 0), (DATA, 512, 0), (STATUS, 1, 1)],
                         {HDR: hdr(T_OUT, 0), DATA: pattern(512, 3)}),
    "out-past-end": seed(0, [(HDR, 16, 0), (DATA, 1024, 0), (STATUS, 1, 1)],
                         {HDR: hdr(T_OUT, 63), DATA: pattern(1024, 4)}),
    "out-ragged": seed(0, [(HDR, 16, 0), (DATA, 511, 0), (STATUS, 1, 1)],
                       {HDR: hdr(T_OUT, 0)}),
    "out-direct-unaligned": seed(DIRECT, [(HDR, 16, 0), (DATA + 3, 700, 0), (DATA + 900, 324, 0),
                                          (STATUS, 1, 1)],
                                 {HDR: hdr(T_OUT, 5), DATA: pattern(1300, 5)}),
    "in": seed(0, [(HDR, 16, 0), (DATA, 2048, 1), (STATUS, 1, 1)], {HDR: hdr(T_IN, 10)}),
    "in-split": seed(0, [(HDR, 5, 0), (HDR + 5, 11, 0), (DATA, 100, 1), (DATA + 100, 0, 1),
                         (DATA + 200, 925, 1)], {HDR: hdr(T_IN, 1)}),
    "in-direct-unaligned": seed(DIRECT, [(HDR, 16, 0), (DATA + 1, 1024, 1), (STATUS, 1, 1)],
                                {HDR: hdr(T_IN, 7)}),
    "in-huge-sector": seed(0, [(HDR, 16, 0), (DATA, 512, 1), (STATUS, 1, 1)],
                           {HDR: hdr(T_IN, (1 << 64) - 1)}),
    "in-aliased": seed(0, [(HDR, 16, 0), (HDR, 512, 1), (HDR + 511, 1, 1)], {HDR: hdr(T_IN, 2)}),
    "in-many-segs": seed(0, [(HDR, 16, 0)] + [(DATA + 64 * i, 64, 1) for i in range(14)] +
                         [(DATA + 0x1000, 129, 1)], {HDR: hdr(T_IN, 0)}),
    "flush": seed(0, [(HDR, 16, 0), (STATUS, 1, 1)], {HDR: hdr(T_FLUSH)}),
    "get-id": seed(0, [(HDR, 16, 0), (DATA, 20, 1), (STATUS, 1, 1)], {HDR: hdr(T_GET_ID)}),
    "get-id-short": seed(0, [(HDR, 16, 0), (DATA, 19, 1), (STATUS, 1, 1)], {HDR: hdr(T_GET_ID)}),
    "discard": seed(DISCARD | WZ, [(HDR, 16, 0), (DATA, 32, 0), (STATUS, 1, 1)],
                    {HDR: hdr(T_DISCARD), DATA: ranges((8, 8, 0), (20, 2, 0))}),
    "discard-unmap": seed(DISCARD, [(HDR, 16, 0), (DATA, 16, 0), (STATUS, 1, 1)],
                          {HDR: hdr(T_DISCARD), DATA: ranges((8, 8, 1))}),
    "discard-not-negotiated": seed(0, [(HDR, 16, 0), (DATA, 16, 0), (STATUS, 1, 1)],
                                   {HDR: hdr(T_DISCARD), DATA: ranges((0, 1, 0))}),
    "write-zeroes": seed(WZ, [(HDR, 16, 0), (DATA, 32, 0), (STATUS, 1, 1)],
                         {HDR: hdr(T_WZ), DATA: ranges((1, 3, 0), (40, 9, 1))}),
    "write-zeroes-direct": seed(WZ | DIRECT | WTHROUGH, [(HDR, 16, 0), (DATA, 16, 0), (STATUS, 1, 1)],
                                {HDR: hdr(T_WZ), DATA: ranges((0, 64, 0))}),
    "write-zeroes-past-end": seed(WZ, [(HDR, 16, 0), (DATA, 32, 0), (STATUS, 1, 1)],
                                  {HDR: hdr(T_WZ), DATA: ranges((0, 1, 0), (63, 2, 0))}),
    "unknown-type": seed(0, [(HDR, 16, 0), (STATUS, 1, 1)], {HDR: hdr(14)}),
    "no-status": seed(0, [(HDR, 16, 0), (DATA, 512, 0)], {HDR: hdr(T_OUT, 0)}),
    "short-header": seed(0, [(HDR, 15, 0), (STATUS, 1, 1)], {HDR: hdr(T_IN, 0)}),
    "empty": seed(0, [], {}),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "blk_request")
    os.makedirs(out, exist_ok=True)
    for name, blob in sorted(SEEDS.items()):
        assert len(blob) < 4096, name
        with open(os.path.join(out, name), "wb") as f:
            f.write(blob)


if __name__ == "__main__":
    main()
