"""The ctypes mirrors must match the C headers: a C program compiled against
include/libvmm prints every struct's size and every field's offset and size, and every
constant the bindings define; the test compares them with the Python side."""
import ctypes
import subprocess
import tempfile
import unittest

import libvmm
from libvmm import _structs as S
from libvmm import bus, devices, memory, sandbox, snapshot, vcpu, vm

import support

# C constant -> the value the bindings use.
CONSTANTS = {
    "VMM_PAGE_SIZE": memory.PAGE_SIZE,
    "VMM_MEM_READONLY": memory.READONLY, "VMM_MEM_HUGEPAGES": memory.HUGEPAGES,
    "VMM_MEM_THP": memory.THP, "VMM_MEM_PRIVATE": memory.PRIVATE,
    "VMM_MEM_MEMFD": memory.Backing.MEMFD, "VMM_MEM_ANON": memory.Backing.ANON,
    "VMM_MEM_FILE": memory.Backing.FILE, "VMM_MEM_HOST": memory.Backing.HOST,
    "VMM_IRQCHIP_KERNEL": vm.Irqchip.KERNEL, "VMM_IRQCHIP_SPLIT": vm.Irqchip.SPLIT,
    "VMM_IRQCHIP_NONE": vm.Irqchip.NONE,
    "VMM_VM_NO_PIT": vm.NO_PIT, "VMM_VM_EXIT_ON_UNHANDLED_IO": vm.EXIT_ON_UNHANDLED_IO,
    "VMM_VM_DONTFORK": vm.DONTFORK,
    "VMM_SYSTEM_EVENT_SHUTDOWN": vcpu.SYSTEM_EVENT_SHUTDOWN,
    "VMM_SYSTEM_EVENT_RESET": vcpu.SYSTEM_EVENT_RESET,
    "VMM_LONG_MODE_FAULT_IDT": vcpu.LONG_MODE_FAULT_IDT,
    "VMM_LONG_MODE_SYSTEM_AREA_SIZE": vcpu.LONG_MODE_SYSTEM_AREA_SIZE,
    "VMM_BUS_PIO": bus.Space.PIO, "VMM_BUS_MMIO": bus.Space.MMIO,
    "VMM_VIRTIO_MMIO_SIZE": devices.MMIO_SIZE,
    "VMM_CONSOLE_FD": devices.CONSOLE_FD, "VMM_CONSOLE_PTY": devices.CONSOLE_PTY,
    "VMM_CONSOLE_CALLBACK": devices.CONSOLE_CALLBACK,
    "VMM_BLK_READONLY": devices.BLK_READONLY, "VMM_BLK_DIRECT": devices.BLK_DIRECT,
    "VMM_SNAPSHOT_SAVE_MEM_IN_PLACE": snapshot.SAVE_MEM_IN_PLACE,
    "VMM_SNAPSHOT_SAVE_SYNC": snapshot.SAVE_SYNC,
    "VMM_SNAPSHOT_RESTORE_ANY_TSC_KHZ": snapshot.RESTORE_ANY_TSC_KHZ,
    "VMM_SNAPSHOT_MAX_STATE_SIZE": snapshot.MAX_STATE_SIZE,
    "VMM_SNAPSHOT_FORMAT_VERSION": snapshot.FORMAT_VERSION,
    "VMM_SNAPSHOT_MEM_EAGER": snapshot.MemMode.EAGER,
    "VMM_SNAPSHOT_MEM_LAZY": snapshot.MemMode.LAZY,
    "VMM_SNAPSHOT_MEM_SHARED": snapshot.MemMode.SHARED,
    "VMM_SANDBOX_NO_RESET": sandbox.NO_RESET, "VMM_SANDBOX_RING0": sandbox.RING0,
    "VMM_SANDBOX_CALL_KEEP_STATE": sandbox.CALL_KEEP_STATE,
    "VMM_SANDBOX_MAX_ARGS": sandbox.MAX_ARGS, "VMM_SANDBOX_MAX_BUFS": sandbox.MAX_BUFS,
}
CONSTANTS.update({f"VMM_EXIT_{r.name}": r.value for r in libvmm.ExitReason})


def fields(cls, prefix="", base=0):
    """(C member designator, offset, size) of every field, nested structs and unions
    included (arrays are checked as a whole)."""
    out = []
    for f in cls._fields_:
        name, ftype = f[0], f[1]
        off = base + getattr(cls, name).offset
        path = prefix + name
        out.append((path, off, ctypes.sizeof(ftype)))
        if isinstance(ftype, type) and issubclass(ftype, (ctypes.Structure, ctypes.Union)):
            out.extend(fields(ftype, path + ".", off))
    return out


def c_program():
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <libvmm/libvmm.h>",
             "#include <libvmm/sandbox.h>", "int main(void) {"]
    for cls in S.ALL:
        t = cls._c_name_
        lines.append(f'printf("{t} %zu\\n", sizeof({t}));')
        for path, _, _ in fields(cls):
            lines.append(f'printf("{t}.{path} %zu %zu\\n", offsetof({t}, {path}), '
                         f'sizeof(((({t} *)0)->{path})));')
    for name in CONSTANTS:
        lines.append(f'printf("{name} %llu\\n", (unsigned long long)({name}));')
    lines.append("return 0; }")
    return "\n".join(lines) + "\n"


def python_side():
    out = {}
    for cls in S.ALL:
        t = cls._c_name_
        out[t] = str(ctypes.sizeof(cls))
        for path, off, size in fields(cls):
            out[f"{t}.{path}"] = f"{off} {size}"
    for name, v in CONSTANTS.items():
        out[name] = str(int(v))
    return out


class LayoutTest(unittest.TestCase):
    def test_structs_and_constants_match_the_headers(self):
        with tempfile.TemporaryDirectory() as d:
            src, exe = f"{d}/layout.c", f"{d}/layout"
            with open(src, "w") as f:
                f.write(c_program())
            subprocess.run([support.cc(), "-std=c11", "-Wall", "-Werror",
                            f"-I{support.INCLUDE_DIR}", src, "-o", exe], check=True)
            text = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
        c_side = {}
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            c_side[key] = value
        py = python_side()
        self.assertEqual(set(c_side), set(py))
        mismatches = {k: (py[k], c_side[k]) for k in py if py[k] != c_side[k]}
        self.assertEqual(mismatches, {}, "python vs C (offset size)")
        self.assertGreater(len(py), 300)


if __name__ == "__main__":
    unittest.main()
