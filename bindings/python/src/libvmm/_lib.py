"""Loading libvmm.so and declaring the C functions the bindings call.

The library is found, in this order, at the path in $LIBVMM_LIBRARY, as "libvmm.so.0"
through the dynamic loader's normal search (LD_LIBRARY_PATH, ld.so.cache, RUNPATH), or
through ctypes.util.find_library("vmm"). It is loaded on first use, so importing the
package works without it. ctypes.CDLL releases the GIL around every call, so a vCPU
running in vmm_vcpu_run or a loop in vmm_loop_run does not block other Python threads.
"""
import ctypes
import ctypes.util
import os
import threading
from ctypes import (POINTER, c_bool, c_char_p, c_int, c_long, c_size_t, c_uint, c_uint8,
                    c_uint16, c_uint32, c_uint64, c_void_p)

from . import _structs as S

P = c_void_p  # every opaque handle

# name: (restype, argtypes)
_PROTOTYPES = {
    "vmm_version": (c_char_p, []),
    "vmm_strerror": (c_char_p, [c_int]),
    "vmm_last_error": (c_char_p, []),
    # vm.h
    "vmm_vm_create": (c_int, [POINTER(P), POINTER(S.vmm_vm_opts)]),
    "vmm_vm_destroy": (None, [P]),
    "vmm_vm_mem": (P, [P]),
    "vmm_vm_bus": (P, [P]),
    "vmm_vm_irq": (P, [P]),
    "vmm_vm_exit_port": (c_uint16, [P]),
    "vmm_vm_fault_port": (c_uint16, [P]),
    "vmm_vm_request_stop": (None, [P, c_uint32]),
    "vmm_vm_stop_requested": (c_uint32, [P]),
    "vmm_vm_clear_stop": (None, [P]),
    "vmm_vm_vcpu_count": (c_size_t, [P]),
    "vmm_vm_get_vcpu": (P, [P, c_size_t]),
    # mem.h
    "vmm_mem_add_region": (c_int, [P, POINTER(S.vmm_mem_region_opts)]),
    "vmm_mem_remove_region": (c_int, [P, c_uint64]),
    "vmm_mem_region_count": (c_size_t, [P]),
    "vmm_mem_get_region": (c_int, [P, c_size_t, POINTER(S.vmm_mem_region_info)]),
    "vmm_mem_translate": (c_int, [P, c_uint64, c_uint64, c_bool, POINTER(c_void_p)]),
    "vmm_mem_read": (c_int, [P, c_uint64, c_void_p, c_size_t]),
    "vmm_mem_write": (c_int, [P, c_uint64, c_void_p, c_size_t]),
    "vmm_mem_dirty_start": (c_int, [P]),
    "vmm_mem_dirty_stop": (c_int, [P]),
    "vmm_mem_dirty_enabled": (c_bool, [P]),
    "vmm_mem_dirty_bitmap": (c_int, [P, c_uint64, POINTER(c_uint64), c_size_t]),
    # vcpu.h
    "vmm_vcpu_create": (c_int, [POINTER(P), P, POINTER(S.vmm_vcpu_opts)]),
    "vmm_vcpu_destroy": (None, [P]),
    "vmm_vcpu_id": (c_uint32, [P]),
    "vmm_vcpu_get_regs": (c_int, [P, POINTER(S.vmm_regs)]),
    "vmm_vcpu_set_regs": (c_int, [P, POINTER(S.vmm_regs)]),
    "vmm_vcpu_get_sregs": (c_int, [P, POINTER(S.vmm_sregs)]),
    "vmm_vcpu_set_sregs": (c_int, [P, POINTER(S.vmm_sregs)]),
    "vmm_vcpu_get_fpu": (c_int, [P, POINTER(S.vmm_fpu)]),
    "vmm_vcpu_set_fpu": (c_int, [P, POINTER(S.vmm_fpu)]),
    "vmm_vcpu_get_msrs": (c_int, [P, POINTER(c_uint32), POINTER(c_uint64), c_size_t]),
    "vmm_vcpu_set_msrs": (c_int, [P, POINTER(c_uint32), POINTER(c_uint64), c_size_t]),
    "vmm_vcpu_translate": (c_int, [P, c_uint64, POINTER(c_uint64)]),
    "vmm_vcpu_setup_long_mode": (c_int, [P, POINTER(S.vmm_long_mode_opts)]),
    "vmm_vcpu_set_idt_gate": (c_int, [P, c_uint8, c_uint64, c_uint]),
    "vmm_vcpu_run": (c_int, [P, POINTER(S.vmm_exit)]),
    "vmm_vcpu_kick": (None, [P]),
    # bus.h
    "vmm_bus_register": (c_int, [P, c_int, c_uint64, c_uint64, POINTER(S.vmm_bus_ops), c_void_p]),
    "vmm_bus_unregister": (c_int, [P, c_int, c_uint64]),
    "vmm_bus_read": (c_int, [P, c_int, c_uint64, c_void_p, c_uint]),
    "vmm_bus_write": (c_int, [P, c_int, c_uint64, c_void_p, c_uint]),
    # elf.h
    "vmm_elf_load": (c_int, [P, c_void_p, c_size_t, POINTER(S.vmm_elf_info)]),
    "vmm_elf_load_file": (c_int, [P, c_char_p, POINTER(S.vmm_elf_info)]),
    "vmm_elf_symbol": (c_int, [c_void_p, c_size_t, c_char_p, POINTER(c_uint64)]),
    # loop.h
    "vmm_loop_create": (c_int, [POINTER(P)]),
    "vmm_loop_destroy": (None, [P]),
    "vmm_loop_run": (c_int, [P]),
    "vmm_loop_run_once": (c_int, [P, c_int]),
    "vmm_loop_stop": (None, [P]),
    # virtio.h and devices
    "vmm_virtio_mmio_attach": (c_int, [POINTER(P), P, P, POINTER(S.vmm_virtio_mmio_opts), P]),
    "vmm_virtio_mmio_destroy": (None, [P]),
    "vmm_virtio_mmio_status": (c_uint32, [P]),
    "vmm_virtio_mmio_error": (c_char_p, [P, c_char_p, c_size_t]),
    "vmm_virtio_mmio_cmdline": (c_int, [P, c_char_p, c_size_t]),
    "vmm_virtio_mmio_get_stats": (None, [P, POINTER(S.vmm_virtio_mmio_stats)]),
    "vmm_virtio_device_destroy": (None, [P]),
    "vmm_virtio_console_create": (c_int, [POINTER(P), POINTER(S.vmm_virtio_console_opts)]),
    "vmm_virtio_console_input": (c_long, [P, c_void_p, c_size_t]),
    "vmm_virtio_blk_create": (c_int, [POINTER(P), POINTER(S.vmm_virtio_blk_opts)]),
    "vmm_virtio_blk_get_stats": (c_int, [P, POINTER(S.vmm_virtio_blk_stats)]),
    "vmm_virtio_rng_create": (c_int, [POINTER(P), POINTER(S.vmm_virtio_rng_opts)]),
    # snapshot.h
    "vmm_snapshot_save": (c_int, [P, POINTER(S.vmm_snapshot_save_opts)]),
    "vmm_snapshot_restore": (c_int, [POINTER(P), POINTER(S.vmm_snapshot_restore_opts)]),
}

# Functions that may be missing from an older libvmm.so (declared when present).
OPTIONAL_PROTOTYPES = {
    # snapshot.h, in-memory snapshots
    "vmm_snapshot_take": (c_int, [P, POINTER(S.vmm_snapshot_take_opts), POINTER(P)]),
    "vmm_snapshot_open": (c_int, [POINTER(P), POINTER(S.vmm_snapshot_restore_opts)]),
    "vmm_snapshot_write": (c_int, [P, POINTER(S.vmm_snapshot_save_opts)]),
    "vmm_snapshot_clone": (c_int, [P, POINTER(S.vmm_vm_opts), POINTER(P)]),
    "vmm_snapshot_reset": (c_int, [P, P, POINTER(S.vmm_snapshot_reset_stats)]),
    "vmm_snapshot_reset_with": (c_int, [P, P, POINTER(S.vmm_snapshot_reset_opts),
                                        POINTER(S.vmm_snapshot_reset_stats)]),
    "vmm_snapshot_device_count": (c_size_t, [P]),
    "vmm_snapshot_device_state": (c_int, [P, c_size_t, POINTER(c_void_p), POINTER(c_size_t)]),
    "vmm_snapshot_mem_size": (c_uint64, [P]),
    "vmm_snapshot_vcpu_count": (c_size_t, [P]),
    "vmm_snapshot_free": (None, [P]),
    # virtio.h, device state
    "vmm_virtio_mmio_save_state": (c_int, [P, c_void_p, c_size_t, POINTER(c_size_t)]),
    "vmm_virtio_mmio_load_state": (c_int, [P, c_void_p, c_size_t]),
    # sandbox.h
    "vmm_sandbox_create": (c_int, [POINTER(P), POINTER(S.vmm_sandbox_opts)]),
    "vmm_sandbox_destroy": (None, [P]),
    "vmm_sandbox_call": (c_int, [P, c_char_p, POINTER(c_uint64), c_size_t,
                                 POINTER(S.vmm_sandbox_call_opts), POINTER(c_uint64)]),
    "vmm_sandbox_reset": (c_int, [P]),
    "vmm_sandbox_symbol": (c_int, [P, c_char_p, POINTER(c_uint64)]),
    "vmm_sandbox_read": (c_int, [P, c_uint64, c_void_p, c_size_t]),
    "vmm_sandbox_write": (c_int, [P, c_uint64, c_void_p, c_size_t]),
    "vmm_sandbox_ptr": (c_int, [P, c_uint64, c_size_t, c_int, POINTER(c_void_p)]),
    "vmm_sandbox_vm": (P, [P]),
    "vmm_sandbox_vcpu": (P, [P]),
    "vmm_sandbox_get_stats": (c_int, [P, POINTER(S.vmm_sandbox_stats)]),
}

_lock = threading.Lock()
_lib = None


def _open():
    path = os.environ.get("LIBVMM_LIBRARY")
    if path:
        return ctypes.CDLL(path)
    try:
        return ctypes.CDLL("libvmm.so.0")
    except OSError as first:
        found = ctypes.util.find_library("vmm")
        if found:
            return ctypes.CDLL(found)
        raise OSError(f"libvmm: cannot load libvmm.so.0 ({first}); install libvmm or set "
                      "LIBVMM_LIBRARY to the path of libvmm.so") from None


def lib():
    """The loaded library with every prototype declared (loaded once, thread-safe)."""
    global _lib
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is None:
            handle = _open()
            for name, (res, args) in _PROTOTYPES.items():
                fn = getattr(handle, name)
                fn.restype, fn.argtypes = res, args
            for name, (res, args) in OPTIONAL_PROTOTYPES.items():
                try:
                    fn = getattr(handle, name)
                except AttributeError:
                    continue
                fn.restype, fn.argtypes = res, args
            _lib = handle
    return _lib


def has(name):
    """Whether the loaded library exports `name`."""
    try:
        getattr(lib(), name)
        return True
    except AttributeError:
        return False


def need(name, what):
    """The function `name`, or NotImplementedError naming `what` if this libvmm.so
    predates it."""
    try:
        return getattr(lib(), name)
    except AttributeError:
        raise NotImplementedError(f"{what}: this libvmm.so has no {name}") from None
