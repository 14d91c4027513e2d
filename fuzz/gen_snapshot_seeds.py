#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_snapshot into fuzz/corpus/snapshot/.

The seeds are snapshot state files (format: lib/snapshot/snapshot_internal.h), written
here by an independent encoder so the corpus also cross-checks the C writer's layout.
Valid files of each composition give the fuzzer every section type to mutate; near-valid
ones (with a correct checksum) sit next to the parser's error paths. Every seed stays
under 4 KiB: vCPUs use the legacy FPU section rather than a 4 KiB XSAVE image.
Deterministic: running it again rewrites the same bytes.
Usage: fuzz/gen_snapshot_seeds.py [out-dir]
"""
import os
import struct
import sys

# Section types and constants (snapshot_internal.h).
VM, MEMMAP, IRQCHIP, PIT, CLOCK = 1, 2, 3, 4, 5
VCPU, REGS, SREGS, FPU, XSAVE, XCRS, LAPIC, EVENTS, DEBUGREGS, MSRS, CPUID = range(0x10, 0x1B)
OPTIONAL = 1
IRQCHIP_KERNEL, IRQCHIP_NONE = 0, 2
MEM_FILE, MEM_IN_PLACE = 0, 1
MEM_HEADER = 4096


def crc32c(data, crc=0):
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def section(typ, instance, payload, flags=0, version=1, length=None):
    n = len(payload) if length is None else length
    pad = (8 - len(payload) % 8) % 8
    return struct.pack("<IIIHH", typ, instance, n, version, flags) + payload + b"\0" * pad


def file(sections, version=1, total=None, fix_crc=True):
    body = b"".join(sections)
    size = 40 + len(body) if total is None else total
    head = b"LVMMSNAP" + struct.pack("<IIQIIII", version, 40, size, len(sections), 0, 0, 0)
    data = head + body
    if fix_crc:
        crc = crc32c(data)
        data = data[:32] + struct.pack("<I", crc) + data[36:]
    return data


def vm_rec(irqchip, nr_vcpus, nr_regions, source=MEM_FILE, mem_size=0, flags=0):
    return struct.pack("<IIHHIII", irqchip, flags, 0xF4, 0xF5, nr_vcpus, nr_regions, source) + \
        bytes(range(16)) + struct.pack("<Q", mem_size)


def memmap(regions):
    """regions: (gpa, len, offset, flags, name)"""
    out = struct.pack("<II", len(regions), 0)
    for gpa, ln, off, flags, name in regions:
        out += struct.pack("<QQQII", gpa, ln, off, flags, 0) + name.encode().ljust(64, b"\0")
    return out


def listing(items):
    return struct.pack("<II", len(items), 0) + b"".join(items)


def msr(index, value):
    return struct.pack("<IIQ", index, 0, value)


def cpuid(function, index, flags, regs):
    return struct.pack("<7I", function, index, flags, *regs)


def vcpu(i, vid, lapic=False, xcrs=False, msrs=None, leaves=None, mp_state=0):
    regs = struct.pack("<18Q", *([0] * 16 + [0x100000 + i, 2]))
    sregs = bytes(312)
    fpu = bytearray(416)
    struct.pack_into("<H", fpu, 128, 0x37F)
    events = bytearray(64)
    struct.pack_into("<I", events, 20, 0xD)  # NMI pending, shadow, SMM valid
    dbg = bytearray(128)
    struct.pack_into("<Q", dbg, 40, 0x400)
    if msrs is None:
        msrs = [msr(0x10, 1000 + i), msr(0x277, 0x0007040600070406)]
    if leaves is None:
        leaves = [cpuid(0, 0, 0, (0xD, 0x756E6547, 0x6C65746E, 0x49656E69)),
                  cpuid(7, 0, 1, (0, 0, 0, 0))]
    out = [section(VCPU, i, struct.pack("<IIIIQ", vid, mp_state, 2000000, 0, 0)),
           section(REGS, i, regs), section(SREGS, i, sregs), section(FPU, i, bytes(fpu))]
    if xcrs:
        out.append(section(XCRS, i, listing([struct.pack("<IIQ", 0, 0, 1)])))
    if lapic:
        out.append(section(LAPIC, i, bytes(1024)))
    out += [section(EVENTS, i, bytes(events)), section(DEBUGREGS, i, bytes(dbg)),
            section(MSRS, i, listing(msrs)), section(CPUID, i, listing(leaves))]
    return out


RAM = (0, 16 << 20, MEM_HEADER, 0, "ram")


def minimal(**kw):
    return [section(VM, 0, vm_rec(IRQCHIP_NONE, 1, 1, mem_size=MEM_HEADER + (16 << 20))),
            section(MEMMAP, 0, memmap([RAM]))] + vcpu(0, 0, **kw)


def kernel_irqchip():
    pic0 = bytearray(16)
    pic0[5] = 0x20
    pic0[2] = 0xFF
    pic1 = bytearray(16)
    pic1[5] = 0x28
    ioapic = bytearray(216)
    struct.pack_into("<Q", ioapic, 0, 0xFEC00000)
    for pin in range(24):
        struct.pack_into("<Q", ioapic, 24 + 8 * pin, 1 << 16)  # masked
    pit = bytearray(112)
    for ch in range(3):
        struct.pack_into("<I", pit, 24 * ch, 0x10000)
        pit[24 * ch + 13] = 0xFF  # mode: never programmed
        pit[24 * ch + 15] = 1 if ch != 2 else 0  # gate
    return [section(VM, 0, vm_rec(IRQCHIP_KERNEL, 1, 1, mem_size=MEM_HEADER + (16 << 20))),
            section(MEMMAP, 0, memmap([RAM])),
            section(IRQCHIP, 0, bytes(pic0)), section(IRQCHIP, 1, bytes(pic1)),
            section(IRQCHIP, 2, bytes(ioapic)), section(PIT, 0, bytes(pit)),
            section(CLOCK, 0, struct.pack("<QQ", 123456789, 0))] + vcpu(0, 0, lapic=True, xcrs=True)


def two_vcpus_in_place():
    regions = [RAM[:2] + (0, 0, "ram"), (1 << 32, 64 << 10, 0, 1, "rom")]
    return [section(VM, 0, vm_rec(IRQCHIP_NONE, 2, 2, source=MEM_IN_PLACE)),
            section(MEMMAP, 0, memmap(regions))] + vcpu(0, 0) + vcpu(1, 1, mp_state=3)


def seeds():
    ok = file(minimal())
    yield "minimal", ok
    yield "kernel-irqchip", file(kernel_irqchip())
    yield "two-vcpus-in-place", file(two_vcpus_in_place())
    yield "optional-unknown-section", file(minimal() + [section(0x7777, 0, b"later", flags=OPTIONAL)])
    yield "unknown-section", file(minimal() + [section(0x7777, 0, b"later")])
    flipped = bytearray(ok)
    flipped[300] ^= 4
    yield "bad-crc", bytes(flipped)
    yield "truncated", ok[:len(ok) - 24]
    yield "newer-version", file(minimal(), version=2)
    overlap = [(0, 16 << 20, MEM_HEADER, 0, "a"), (8 << 20, 16 << 20, MEM_HEADER + (16 << 20), 0, "b")]
    yield "overlapping-regions", file(
        [section(VM, 0, vm_rec(IRQCHIP_NONE, 1, 2, mem_size=MEM_HEADER + (32 << 20))),
         section(MEMMAP, 0, memmap(overlap))] + vcpu(0, 0))
    yield "billion-vcpus", file([section(VM, 0, vm_rec(IRQCHIP_NONE, 10**9, 1, mem_size=MEM_HEADER + (16 << 20))),
                                 section(MEMMAP, 0, memmap([RAM]))])
    yield "huge-region-count", file([section(VM, 0, vm_rec(IRQCHIP_NONE, 0, 0xFFFFFF, mem_size=MEM_HEADER))])
    yield "section-past-end", file([section(VM, 0, vm_rec(IRQCHIP_NONE, 0, 1, mem_size=MEM_HEADER + (16 << 20))),
                                    section(MEMMAP, 0, memmap([RAM]), length=0xFFFFFF00)])
    yield "msrs-unsorted", file(minimal(msrs=[msr(0x277, 0), msr(0x10, 0)]))
    yield "cpuid-mixed", file(minimal(leaves=[cpuid(7, 0, 0, (0, 0, 0, 0)), cpuid(7, 1, 1, (0, 0, 0, 0))]))
    yield "missing-memmap", file(minimal()[:1] + minimal()[2:])


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "snapshot")
    os.makedirs(out, exist_ok=True)
    for name, data in seeds():
        assert len(data) < 4096, (name, len(data))
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
