#!/usr/bin/env python3
"""Writes the seed corpora of fuzz_bzimage (fuzz/corpus/bzimage/) and fuzz_pvh
(fuzz/corpus/pvh/): small synthetic kernels for the targets' map, RAM [0, 32 MiB).

Valid images give the fuzzer a loadable start; near-valid ones (one field off) sit next
to each error path. Every file stays under 4 KiB. Deterministic: running it again
rewrites the same bytes. Usage: fuzz/gen_boot_seeds.py [fuzz-dir]
"""
import os
import struct
import sys

# ---- bzImage ---------------------------------------------------------------------------

HDR = 0x1F1
LOADED_HIGH = 1
XLF_KERNEL_64, XLF_ABOVE_4G = 1, 2


def bzimage(setup_sects=1, kernel_len=0x100, version=0x020F, loadflags=LOADED_HIGH,
            xloadflags=XLF_KERNEL_64 | XLF_ABOVE_4G, jump_end=0x26C, relocatable=1,
            alignment=0x200000, pref=0x1000000, init_size=0x100000, cmdline_size=2047,
            initrd_max=0x7FFFFFFF, trailer=0, syssize=None, boot_flag=0xAA55, magic=b"HdrS",
            jump_op=0xEB, truncate=None):
    sects = setup_sects or 4
    setup = bytearray((sects + 1) * 512)
    for i in range(len(setup)):
        setup[i] = 0x40 + (i & 0x1F)
    kernel = bytes((k * 31 + 7) & 0xFF for k in range(kernel_len + trailer))
    sys16 = (kernel_len + 15) // 16 if syssize is None else syssize
    # setup_header fields up to kernel_info_offset, in order (see asm/bootparam.h)
    hdr = struct.pack(
        "<BHIHHHHHIHIHHBBHIIIIHBBIIIBBHIIQIIQQIII",
        setup_sects, 0, sys16, 0, 0xFFFF, 0, boot_flag,
        jump_op | ((jump_end - 0x202) & 0xFF) << 8, struct.unpack("<I", magic)[0], version,
        0, 0, 0, 0, loadflags, 0, 0x100000, 0, 0, 0, 0, 0, 0, 0, initrd_max, alignment,
        relocatable, 21, xloadflags, cmdline_size, 0, 0, 0, 0, 0, pref, init_size, 0, 0)
    assert len(hdr) == 0x26C - HDR, hex(len(hdr))
    setup[HDR:HDR + len(hdr)] = hdr
    img = bytes(setup) + kernel
    img += bytes(-len(img) % 16)
    return img[:truncate] if truncate is not None else img


BZ_SEEDS = {
    "minimal": bzimage(),
    "not-relocatable": bzimage(relocatable=0, pref=0x400000),
    "setup-sects-zero": bzimage(setup_sects=0),
    "signed-trailer": bzimage(trailer=200),
    "version-2.12": bzimage(version=0x020C),
    "version-2.06": bzimage(version=0x0206),
    "no-kernel-64": bzimage(xloadflags=XLF_ABOVE_4G),
    "zimage": bzimage(loadflags=0),
    "bad-jump": bzimage(jump_op=0xE9),
    "short-header": bzimage(jump_end=0x264),
    "long-header": bzimage(jump_end=0x290),
    "bad-boot-flag": bzimage(boot_flag=0xAA54),
    "bad-magic": bzimage(magic=b"HdrZ"),
    "syssize-past-end": bzimage(syssize=0x11),
    "init-size-small": bzimage(init_size=0x80),
    "init-size-huge": bzimage(init_size=0x10000000),
    "alignment-odd": bzimage(alignment=0x300000),
    "initrd-max-low": bzimage(initrd_max=0x10FFFFF),
    "cmdline-size-tiny": bzimage(cmdline_size=5),
    "pref-high": bzimage(pref=0x1F00000),
    "truncated-header": bzimage(truncate=0x240),
}

# ---- vmlinux ELF -----------------------------------------------------------------------

EHDR, PHDR = 64, 56
PT_LOAD, PT_NOTE = 1, 4


def note(owner, ntype, desc):
    name = owner.encode() + b"\0"
    pad = lambda b: b + bytes(-len(b) % 4)
    return struct.pack("<III", len(name), len(desc), ntype) + pad(name) + pad(desc)


def vmlinux(pvh=struct.pack("<Q", 0x1000100), paddr=0x1000000, entry=None, segs=None,
            note_first=True):
    """ELF64 with PT_LOAD segments (paddr, filesz, memsz) and an optional Xen PVH note."""
    segs = segs or [(paddr, 0x200, 0x1000)]
    notes = note("GNU", 3, b"\x01\x02\x03\x04")
    if pvh is not None:
        notes = note("Xen", 18, pvh) + notes if note_first else notes + note("Xen", 18, pvh)
    nph = len(segs) + 1
    off = EHDR + PHDR * nph
    note_off = off
    data_off = note_off + len(notes)
    phdrs = struct.pack("<IIQQQQQQ", PT_NOTE, 4, note_off, 0, 0, len(notes), len(notes), 4)
    body = notes
    for i, (pa, filesz, memsz) in enumerate(segs):
        phdrs += struct.pack("<IIQQQQQQ", PT_LOAD, 5, data_off + len(body) - len(notes),
                             0xFFFFFFFF80000000 + pa, pa, filesz, memsz, 0x1000)
        body += bytes((k * 13 + 5 + i) & 0xFF for k in range(filesz))
    entry = paddr + 0x200 - 0x100 if entry is None else entry
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    eh = ident + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, entry, EHDR, 0, 0, EHDR, PHDR, nph,
                             64, 0, 0)
    return eh + phdrs + body


PVH_SEEDS = {
    "pvh-8": vmlinux(),
    "pvh-4": vmlinux(pvh=struct.pack("<I", 0x1000100)),
    "pvh-note-last": vmlinux(note_first=False),
    "elf64-no-note": vmlinux(pvh=None),
    "pvh-note-2-bytes": vmlinux(pvh=b"\x00\x01"),
    "pvh-note-12-bytes": vmlinux(pvh=bytes(12)),
    "pvh-above-4g": vmlinux(pvh=struct.pack("<Q", 0x101000100)),
    "pvh-in-bss": vmlinux(pvh=struct.pack("<I", 0x1000800)),
    "pvh-two-segments": vmlinux(segs=[(0x1000000, 0x200, 0x1000), (0x1200000, 0x100, 0x3000)]),
    "pvh-low-segment": vmlinux(paddr=0x80000, pvh=struct.pack("<I", 0x80100)),
    "pvh-outside-ram": vmlinux(paddr=0x3000000, pvh=struct.pack("<I", 0x3000100)),
    "elf64-virtual-entry": vmlinux(pvh=None, entry=0xFFFFFFFF81000100),
}


def main():
    base = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    for sub, seeds in (("bzimage", BZ_SEEDS), ("pvh", PVH_SEEDS)):
        out = os.path.join(base, "corpus", sub)
        os.makedirs(out, exist_ok=True)
        for name, data in seeds.items():
            assert len(data) < 4096, (name, len(data))
            with open(os.path.join(out, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
