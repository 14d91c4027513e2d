#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_virtio_state into fuzz/corpus/virtio_state/.

Each seed is a device selector, guest RAM contents (rings and descriptors) and a device
state blob in the format of lib/virtio/mmio_state.c (version 1), for the devices the
fuzz target attaches: valid states of every kind (idle, setting up, active with chains
in flight, direct and indirect, needing a reset, with device records) that the loader
accepts, so the fuzzer starts from blobs that reach every check. Deterministic: running
it again rewrites the same bytes. Usage: fuzz/gen_virtio_state_seeds.py [out-dir]
"""
import os
import struct
import sys

PROBE, CONSOLE, BALLOON, RNG = 0, 1, 2, 3

ACK, DRIVER, DRIVER_OK, FEATURES_OK, NEEDS_RESET = 1, 2, 4, 8, 0x40
V1, F_INDIRECT, F_EVENT_IDX = 1 << 32, 1 << 28, 1 << 29
TRANSPORT = V1 | F_INDIRECT | F_EVENT_IDX
NEXT, WRITE, INDIRECT = 1, 2, 4
QF_ENABLED, QF_BROKEN, QF_NOTIFY_ON, QF_AVAIL_EVENT_SET = 1, 2, 4, 8

# What the fuzz target's devices are: id, queues, queue_size_max, config size, offered.
DEVICES = {
    PROBE: (0x4243, 2, 16, 8, 0x7 | TRANSPORT),
    CONSOLE: (3, 2, 128, 12, TRANSPORT),
    BALLOON: (5, 3, 128, 16, 1 << 1 | TRANSPORT),
    RNG: (4, 1, 256, 0, TRANSPORT),
}

RAM_BASE = 0x1000  # the fuzz input's RAM bytes land here


def crc32c(data):
    crc = 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 if crc & 1 else 0)
    return crc ^ 0xffffffff


def queue(num=0, desc=0, avail=0, used=0, ready=0, flags=0, last_avail=0, used_idx=0,
          signalled=0, avail_event=0, pushed=0, heads=()):
    rec = struct.pack("<IQQQBBHHHHHI", num, desc, avail, used, ready, flags, last_avail,
                      used_idx, signalled, avail_event, len(heads), pushed)
    assert len(rec) == 44
    return rec + b"".join(struct.pack("<H", h) for h in heads)


def blob(dev, status=0, driver_features=0, features=None, sels=(0, 0, 0), isr=0, gen=0,
         queues=None, error=b"", dstate=b""):
    dev_id, nq, qmax, cfg, offered = DEVICES[dev]
    if features is None:
        features = driver_features if status & FEATURES_OK else 0
    queues = list(queues or [])
    queues += [queue()] * (nq - len(queues))
    body = b"".join(queues) + error + dstate
    total = 88 + len(body)
    hdr = struct.pack("<IHHII", 0x5344564c, 1, 88, total, 0)
    hdr += struct.pack("<IHHII", dev_id, nq, qmax, cfg, status)
    hdr += struct.pack("<QQQ", offered, driver_features, features)
    hdr += struct.pack("<IIIIIIII", sels[0], sels[1], sels[2], isr, gen, 0, len(dstate), len(error))
    assert len(hdr) == 88
    b = bytearray(hdr + body)
    struct.pack_into("<I", b, 12, crc32c(bytes(b)))
    return bytes(b)


class Ram:
    """Guest RAM from RAM_BASE on, as the fuzz target copies it in."""

    def __init__(self, size=0x3000):
        self.b = bytearray(size)

    def put(self, gpa, data):
        off = gpa - RAM_BASE
        self.b[off:off + len(data)] = data

    def desc(self, table, i, addr, length, flags, nxt=0):
        self.put(table + 16 * i, struct.pack("<QIHH", addr, length, flags, nxt))

    def avail(self, base, size, idx, entries):
        self.put(base + 2, struct.pack("<H", idx))
        for slot, head in entries.items():
            self.put(base + 4 + 2 * (slot % size), struct.pack("<H", head))


SEAL = 0x80  # the fuzz target fixes length and CRC of mutated blobs


def seed(dev, ram, b, seal=True):
    raw = ram.b if ram else b""
    return bytes([dev | (SEAL if seal else 0)]) + struct.pack("<H", len(raw)) + bytes(raw) + b


ACTIVE = ACK | DRIVER | FEATURES_OK | DRIVER_OK
DESC, AVAIL, USED = 0x1000, 0x1100, 0x1200
DESC1, AVAIL1, USED1 = 0x1800, 0x1900, 0x1a00
BUF = 0x3000


def seeds():
    out = {}
    out["probe_idle"] = seed(PROBE, None, blob(PROBE))
    out["probe_idle_unsealed"] = seed(PROBE, None, blob(PROBE), seal=False)
    out["probe_setting_up"] = seed(PROBE, None, blob(
        PROBE, status=ACK | DRIVER | FEATURES_OK, driver_features=V1 | 1, sels=(1, 1, 0),
        queues=[queue(8, DESC, AVAIL, USED, ready=1), queue(5)]))

    # Active, EVENT_IDX: heads 3 and 1 in flight (1 chains to 2), head 4 posted since.
    ram = Ram()
    ram.desc(DESC, 3, BUF, 16, WRITE)
    ram.desc(DESC, 1, BUF + 0x100, 8, NEXT, 2)
    ram.desc(DESC, 2, BUF + 0x200, 16, WRITE)
    ram.desc(DESC, 4, BUF + 0x300, 32, 0)
    ram.avail(AVAIL, 8, 6, {3: 3, 4: 1, 5: 4})
    feats = V1 | F_EVENT_IDX | 1
    out["probe_inflight"] = seed(PROBE, ram, blob(
        PROBE, status=ACTIVE, driver_features=feats, isr=1, gen=2,
        queues=[queue(8, DESC, AVAIL, USED, 1, QF_ENABLED | QF_NOTIFY_ON | QF_AVAIL_EVENT_SET,
                      last_avail=5, used_idx=3, signalled=3, avail_event=5, heads=(3, 1))],
        dstate=b"PRB1state"))

    # Both queues; queue 1 has an indirect chain in flight.
    ram = Ram()
    ram.desc(DESC1, 0, BUF + 0x800, 32, INDIRECT)
    ram.put(BUF + 0x800, struct.pack("<QIHH", BUF, 8, NEXT, 1) + struct.pack("<QIHH", BUF + 0x40, 8, WRITE, 0))
    ram.avail(AVAIL1, 4, 1, {0: 0})
    feats = V1 | F_INDIRECT | 3
    out["probe_indirect"] = seed(PROBE, ram, blob(
        PROBE, status=ACTIVE, driver_features=feats,
        queues=[queue(16, DESC, AVAIL, USED, 1, QF_ENABLED | QF_NOTIFY_ON),
                queue(4, DESC1, AVAIL1, USED1, 1, QF_ENABLED | QF_NOTIFY_ON, last_avail=1, heads=(0,),
                      pushed=1)]))

    out["probe_needs_reset"] = seed(PROBE, None, blob(
        PROBE, status=ACTIVE | NEEDS_RESET, driver_features=V1, isr=2,
        queues=[queue(8, DESC, AVAIL, USED, 1)], error=b"probe: virtqueue: head 9 >= queue size 8"))
    out["probe_broken_queue"] = seed(PROBE, None, blob(
        PROBE, status=ACTIVE, driver_features=V1,
        queues=[queue(8, DESC, AVAIL, USED, 1, QF_ENABLED | QF_BROKEN, last_avail=2, used_idx=2)]))
    out["probe_wrapped_indices"] = seed(PROBE, None, blob(
        PROBE, status=ACTIVE, driver_features=V1 | F_EVENT_IDX,
        queues=[queue(2, DESC, AVAIL, USED, 1, QF_ENABLED, last_avail=1, used_idx=0xffff,
                      signalled=0xfff0, pushed=0xffffffff, heads=(1, 0))]))

    con = struct.pack("<IHHII", 0x314e4f43, 80, 25, 2, 2) + b"hiyo"
    out["console_pending"] = seed(CONSOLE, None, blob(
        CONSOLE, status=ACTIVE, driver_features=V1,
        queues=[queue(64, DESC, AVAIL, USED, 1, QF_ENABLED | QF_NOTIFY_ON),
                queue(64, 0x2000, 0x2400, 0x2800, 1, QF_ENABLED | QF_NOTIFY_ON)], dstate=con))
    out["console_idle"] = seed(CONSOLE, None, blob(CONSOLE, dstate=struct.pack("<IHHII", 0x314e4f43, 0, 0, 0, 0)))

    bln = struct.pack("<IIIQQQ", 0x314e4c42, 100, 40, 40, 0, 3) + b"".join(
        struct.pack("<Q", i * 4096) for i in range(16))
    ram = Ram()
    ram.desc(0x2000, 0, BUF, 20, 0)
    out["balloon_stats_held"] = seed(BALLOON, ram, blob(
        BALLOON, status=ACTIVE, driver_features=V1 | 1 << 1,
        queues=[queue(8, DESC, AVAIL, USED, 1, QF_ENABLED | QF_NOTIFY_ON),
                queue(8, DESC1, AVAIL1, USED1, 1, QF_ENABLED | QF_NOTIFY_ON),
                queue(1, 0x2000, 0x2100, 0x2200, 1, QF_ENABLED | QF_NOTIFY_ON, last_avail=1, heads=(0,))],
        dstate=bln))

    ram = Ram()
    ram.desc(DESC, 7, BUF, 64, WRITE)
    out["rng_inflight"] = seed(RNG, ram, blob(
        RNG, status=ACTIVE, driver_features=V1,
        queues=[queue(8, DESC, AVAIL, USED, 1, QF_ENABLED | QF_NOTIFY_ON, last_avail=1, heads=(7,))]))
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus", "virtio_state")
    os.makedirs(outdir, exist_ok=True)
    for name, data in seeds().items():
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
