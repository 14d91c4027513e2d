"""libvmm: Python bindings (ctypes) for the libvmm embeddable VMM library on Linux KVM.

    import libvmm
    with libvmm.VM() as vm:
        vm.memory.add_region(0, 32 << 20)
        vm.bus.register_pio(0xe9, 1, write=lambda off, size, v: print(chr(v), end=""))
        info = vm.load_elf("hello.elf")
        cpu = vm.create_vcpu()
        cpu.setup_long_mode(info.entry, stack=0x800000, cpl=3)
        exit = cpu.run(timeout=10)

The shared library is found through $LIBVMM_LIBRARY or the dynamic loader (libvmm.so.0).
"""
from . import snapshot
from ._lib import lib as _load_library
from .bus import Bus, Space
from .devices import (Blk, Console, Rng, Transport, VirtioDevice, MMIO_SIZE, STATUS_ACKNOWLEDGE,
                      STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FAILED, STATUS_FEATURES_OK,
                      STATUS_NEEDS_RESET)
from .errors import VmmError, last_error
from .memory import PAGE_SIZE, Backing, Memory, Region
from .snapshot import MemMode, Snapshot
from .sandbox import Sandbox
from .vcpu import (VCPU, Exit, ExitReason, Regs, LONG_MODE_SYSTEM_AREA_SIZE, SYSTEM_EVENT_RESET,
                   SYSTEM_EVENT_SHUTDOWN)
from .vm import VM, ElfInfo, Irqchip, Loop, elf_symbol

__version__ = "0.1.0"


def library_version():
    """The version of the loaded libvmm.so ("MAJOR.MINOR.PATCH")."""
    return _load_library().vmm_version().decode()


def strerror(err):
    return _load_library().vmm_strerror(-abs(err)).decode()


__all__ = ["VM", "VCPU", "Memory", "Bus", "Space", "Region", "Backing", "Regs", "Exit",
           "ExitReason", "Irqchip", "Loop", "ElfInfo", "elf_symbol", "VmmError", "last_error",
           "Console", "Blk", "Rng", "Transport", "VirtioDevice", "MemMode", "Snapshot", "Sandbox", "snapshot",
           "library_version", "strerror", "PAGE_SIZE", "MMIO_SIZE", "STATUS_ACKNOWLEDGE",
           "STATUS_DRIVER", "STATUS_DRIVER_OK", "STATUS_FAILED", "STATUS_FEATURES_OK",
           "STATUS_NEEDS_RESET", "LONG_MODE_SYSTEM_AREA_SIZE", "SYSTEM_EVENT_RESET",
           "SYSTEM_EVENT_SHUTDOWN"]
