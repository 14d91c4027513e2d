#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_elf into fuzz/corpus/elf/ (small ELF64 images).

The images target fuzz_elf's memory map: A [0, 64K) + B [64K, 128K) adjacent,
C [1M, 1M+64K), R [2M, 2M+4K) read-only. Valid ones give the fuzzer a loadable starting
point; near-valid ones (one field off) sit right next to each error path. Deterministic:
running it again rewrites the same bytes. Usage: fuzz/gen_elf_seeds.py [out-dir]
"""
import os
import struct
import sys

EHDR, PHDR, SHDR, SYM = 64, 56, 64, 24
PT_LOAD, PT_NOTE, PT_INTERP, PT_GNU_STACK = 1, 4, 3, 0x6474E551
ET_EXEC, ET_DYN = 2, 3


def ehdr(phnum, shoff=0, shnum=0, shstrndx=0, etype=ET_EXEC, entry=0x1000, ident=None):
    ident = ident or (b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8))
    return ident + struct.pack("<HHIQQQIHHHHHH", etype, 62, 1, entry, EHDR if phnum else 0,
                               shoff, 0, EHDR, PHDR, phnum, SHDR, shnum, shstrndx)


def phdr(ptype, offset, paddr, filesz, memsz, align=0x1000):
    return struct.pack("<IIQQQQQQ", ptype, 5, offset, paddr, paddr, filesz, memsz, align)


def code(n, seed):
    # bytes that vary per seed, so segments are told apart in guest memory
    return bytes((seed + 13 * i) & 0xFF for i in range(n))


def exec_image(segs, etype=ET_EXEC, entry=0x1000):
    """segs: (type, paddr, file bytes, memsz). Returns ehdr + phdrs + data."""
    off = EHDR + PHDR * len(segs)
    hdrs, data = b"", b""
    for ptype, paddr, blob, memsz in segs:
        hdrs += phdr(ptype, off + len(data), paddr, len(blob), memsz)
        data += blob
    return ehdr(len(segs), etype=etype, entry=entry) + hdrs + data


def note(owner, ntype, desc):
    name = owner.encode() + b"\0"
    pad = lambda b: b + bytes(-len(b) % 4)
    return struct.pack("<III", len(name), len(desc), ntype) + pad(name) + pad(desc)


def with_sections(load_paddr=0x1000):
    """PT_LOAD + PT_NOTE (Xen entry note, GNU build id) + .symtab/.strtab/.shstrtab."""
    notes = note("GNU", 3, b"\x01\x02\x03\x04\x05") + note("Xen", 18, struct.pack("<I", load_paddr))
    text = code(0x40, 7)
    strtab = b"\0_start\0data_buf\0undefined\0"
    shstr = b"\0.symtab\0.strtab\0.shstrtab\0.text\0"
    syms = (bytes(SYM)
            + struct.pack("<IBBHQQ", 1, 0x12, 0, 4, load_paddr, 0x40)      # _start
            + struct.pack("<IBBHQQ", 8, 0x11, 0, 4, load_paddr + 0x20, 8)  # data_buf
            + struct.pack("<IBBHQQ", 17, 0x10, 0, 0, 0, 0))                 # undefined
    nph = 2
    off = EHDR + PHDR * nph
    text_off = off
    note_off = text_off + len(text)
    sym_off = note_off + len(notes)
    str_off = sym_off + len(syms)
    shstr_off = str_off + len(strtab)
    sh_off = (shstr_off + len(shstr) + 7) & ~7
    body = text + notes + syms + strtab + shstr
    body += bytes(sh_off - off - len(body))

    def sh(name, stype, offset, size, link=0, info=0, entsize=0):
        return struct.pack("<IIQQQQIIQQ", name, stype, 0, 0, offset, size, link, info, 8, entsize)

    shdrs = (bytes(SHDR)
             + sh(1, 2, sym_off, len(syms), link=2, info=1, entsize=SYM)  # .symtab
             + sh(9, 3, str_off, len(strtab))                             # .strtab
             + sh(17, 3, shstr_off, len(shstr))                           # .shstrtab
             + sh(27, 1, text_off, len(text)))                            # .text
    return (ehdr(nph, shoff=sh_off, shnum=5, shstrndx=3, entry=load_paddr)
            + phdr(PT_LOAD, text_off, load_paddr, len(text), 0x100)
            + phdr(PT_NOTE, note_off, 0, len(notes), 0, align=4)
            + body + shdrs)


def seeds():
    yield "minimal", exec_image([(PT_LOAD, 0x1000, code(0x20, 1), 0x20)])
    yield "text-data-bss", exec_image([
        (PT_LOAD, 0x1000, code(0x80, 2), 0x80),
        (PT_GNU_STACK, 0, b"", 0),
        (PT_LOAD, 0x100000, code(0x30, 3), 0x2000),
    ])
    yield "across-regions", exec_image([(PT_LOAD, 0xFF00, code(0x180, 4), 0x300)])
    yield "dyn", exec_image([(PT_LOAD, 0x4000, code(0x40, 5), 0x80)], etype=ET_DYN)
    yield "many-segments", exec_image([(PT_LOAD, 0x200 * i, code(0x10, i), 0x40) for i in range(40)])
    yield "sections-notes-symbols", with_sections()
    # near-valid: one detail wrong each
    yield "overlap", exec_image([(PT_LOAD, 0x1000, code(0x40, 6), 0x100),
                                 (PT_LOAD, 0x10F0, code(0x40, 7), 0x40)])
    yield "outside-ram", exec_image([(PT_LOAD, 0x1000, code(0x20, 8), 0x20),
                                     (PT_LOAD, 0x50000, code(0x20, 9), 0x20)])
    yield "off-end-of-region", exec_image([(PT_LOAD, 0x10FF00, code(0x20, 10), 0x200)])
    yield "read-only", exec_image([(PT_LOAD, 0x200000, code(0x20, 11), 0x20)])
    yield "interp", exec_image([(PT_INTERP, 0, b"/lib/ld.so\0", 11),
                                (PT_LOAD, 0x1000, code(0x20, 12), 0x20)])
    yield "too-many-segments", exec_image([(PT_LOAD, 0x100 * i, b"", 0x10) for i in range(65)])
    img = bytearray(exec_image([(PT_LOAD, 0x1000, code(0x40, 13), 0x40)]))
    img[4] = 1  # ELFCLASS32
    yield "class32", bytes(img)
    img = bytearray(exec_image([(PT_LOAD, 0x1000, code(0x40, 14), 0x40)]))
    struct.pack_into("<Q", img, EHDR + 32, 0x41)  # filesz past the end of the file
    yield "filesz-past-end", bytes(img)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus", "elf")
    os.makedirs(out, exist_ok=True)
    for name, blob in seeds():
        assert len(blob) < 4096, name
        with open(os.path.join(out, name), "wb") as f:
            f.write(blob)
        print(f"{name}: {len(blob)} bytes")


if __name__ == "__main__":
    main()
