"""ctypes mirrors of the C structs in include/libvmm/*.h.

Each class names its C type in ``_c_name_``; tests/test_layout.py compiles a small C
program against the headers and checks every size and field offset listed here, so a
change in a header that is not mirrored here fails the tests instead of corrupting memory.
Options structs start with ``size``: ``new()`` sets it from ctypes.sizeof, as the C
``_INIT`` macros do, and fills the same defaults.
"""
import ctypes
from ctypes import (POINTER, Structure, Union, c_char_p, c_int, c_size_t, c_uint8, c_uint16,
                    c_uint32, c_uint64, c_void_p, CFUNCTYPE)

c_enum = c_int  # C enums with small non-negative values: int-sized on x86_64 (SysV ABI)


class _Opts(Structure):
    """An options struct: ``new(**fields)`` applies the C _INIT defaults, then fields."""
    _defaults_ = {}

    @classmethod
    def new(cls, **fields):
        o = cls()
        o.size = ctypes.sizeof(cls)
        for k, v in cls._defaults_.items():
            setattr(o, k, v)
        for k, v in fields.items():
            if not hasattr(o, k):
                raise AttributeError(f"{cls._c_name_} has no field {k!r}")
            setattr(o, k, v)
        return o


# ---- vm.h ----
class vmm_vm_opts(_Opts):
    _c_name_ = "vmm_vm_opts"
    _fields_ = [("size", c_uint32), ("flags", c_uint32), ("irqchip", c_enum),
                ("kvm_path", c_char_p), ("exit_port", c_uint16), ("fault_port", c_uint16),
                ("kick_signal", c_int), ("dirty_ring_entries", c_uint32)]


# ---- mem.h ----
class vmm_mem_region_opts(_Opts):
    _c_name_ = "vmm_mem_region_opts"
    _fields_ = [("size", c_uint32), ("flags", c_uint32), ("gpa", c_uint64), ("len", c_uint64),
                ("backing", c_enum), ("fd", c_int), ("file_offset", c_uint64),
                ("host", c_void_p), ("name", c_char_p)]
    _defaults_ = {"fd": -1}


class vmm_mem_region_info(Structure):
    _c_name_ = "vmm_mem_region_info"
    _fields_ = [("gpa", c_uint64), ("len", c_uint64), ("host", c_void_p), ("fd", c_int),
                ("file_offset", c_uint64), ("flags", c_uint32), ("slot", c_uint32)]


# ---- vcpu.h ----
REG_NAMES = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9", "r10",
             "r11", "r12", "r13", "r14", "r15", "rip", "rflags")


class vmm_regs(Structure):
    _c_name_ = "vmm_regs"
    _fields_ = [(n, c_uint64) for n in REG_NAMES]


class vmm_segment(Structure):
    _c_name_ = "vmm_segment"
    _fields_ = [("base", c_uint64), ("limit", c_uint32), ("selector", c_uint16)] + \
        [(n, c_uint8) for n in ("type", "present", "dpl", "db", "s", "l", "g", "avl", "unusable")]


class vmm_dtable(Structure):
    _c_name_ = "vmm_dtable"
    _fields_ = [("base", c_uint64), ("limit", c_uint16)]


class vmm_sregs(Structure):
    _c_name_ = "vmm_sregs"
    _fields_ = [(n, vmm_segment) for n in ("cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt")] + \
        [("gdt", vmm_dtable), ("idt", vmm_dtable)] + \
        [(n, c_uint64) for n in ("cr0", "cr2", "cr3", "cr4", "cr8", "efer", "apic_base")]


class vmm_fpu(Structure):
    _c_name_ = "vmm_fpu"
    _fields_ = [("fpr", (c_uint8 * 16) * 8), ("fcw", c_uint16), ("fsw", c_uint16),
                ("ftwx", c_uint8), ("last_opcode", c_uint16), ("last_ip", c_uint64),
                ("last_dp", c_uint64), ("xmm", (c_uint8 * 16) * 16), ("mxcsr", c_uint32)]


class vmm_vcpu_opts(_Opts):
    _c_name_ = "vmm_vcpu_opts"
    _fields_ = [("size", c_uint32), ("id", c_uint32), ("cpuid", c_void_p)]


class vmm_long_mode_opts(_Opts):
    _c_name_ = "vmm_long_mode_opts"
    _fields_ = [("size", c_uint32), ("flags", c_uint32), ("cpl", c_uint32), ("entry", c_uint64),
                ("stack", c_uint64), ("kernel_stack", c_uint64), ("system_area", c_uint64),
                ("identity_map", c_uint64)]
    _defaults_ = {"flags": 1}  # VMM_LONG_MODE_FAULT_IDT


class _exit_guest(Structure):
    _fields_ = [("code", c_uint64)]


class _exit_fault(Structure):
    _fields_ = [("vector", c_uint32), ("has_error_code", c_uint32), ("error_code", c_uint64),
                ("rip", c_uint64), ("cr2", c_uint64), ("cs", c_uint64)]


class _exit_io(Structure):
    _fields_ = [("addr", c_uint64), ("size", c_uint32), ("is_write", c_uint32),
                ("is_mmio", c_uint32), ("value", c_uint64)]


class _exit_system(Structure):
    _fields_ = [("type", c_uint32)]


class _exit_internal(Structure):
    _fields_ = [("rip", c_uint64), ("suberror", c_uint32), ("insn_len", c_uint32),
                ("insn", c_uint8 * 16)]


class _exit_u(Union):
    _fields_ = [("guest", _exit_guest), ("fault", _exit_fault), ("io", _exit_io),
                ("system", _exit_system), ("internal", _exit_internal)]


class vmm_exit(Structure):
    _c_name_ = "vmm_exit"
    _fields_ = [("reason", c_enum), ("u", _exit_u)]


# ---- bus.h ----
BUS_READ_FN = CFUNCTYPE(c_uint64, c_void_p, c_uint64, ctypes.c_uint)
BUS_WRITE_FN = CFUNCTYPE(None, c_void_p, c_uint64, ctypes.c_uint, c_uint64)


class vmm_bus_ops(Structure):
    _c_name_ = "vmm_bus_ops"
    _fields_ = [("read", BUS_READ_FN), ("write", BUS_WRITE_FN)]


# ---- elf.h ----
class vmm_elf_info(Structure):
    _c_name_ = "vmm_elf_info"
    _fields_ = [("entry", c_uint64), ("low", c_uint64), ("high", c_uint64),
                ("segments", c_uint32)]


# ---- loop.h ----
LOOP_FN = CFUNCTYPE(None, c_void_p, c_int, c_uint32)

# ---- virtio.h and devices ----
class vmm_virtio_mmio_opts(_Opts):
    _c_name_ = "vmm_virtio_mmio_opts"
    _fields_ = [("size", c_uint32), ("base", c_uint64), ("gsi", c_uint32)]


class vmm_virtio_mmio_stats(Structure):
    _c_name_ = "vmm_virtio_mmio_stats"
    _fields_ = [("notifies", c_uint64), ("interrupts", c_uint64)]


CONSOLE_OUTPUT_FN = CFUNCTYPE(None, c_void_p, c_void_p, c_size_t)


class vmm_virtio_console_opts(_Opts):
    _c_name_ = "vmm_virtio_console_opts"
    _fields_ = [("size", c_uint32), ("backend", c_enum), ("in_fd", c_int), ("out_fd", c_int),
                ("output", CONSOLE_OUTPUT_FN), ("ctx", c_void_p), ("cols", c_uint16),
                ("rows", c_uint16)]
    _defaults_ = {"in_fd": -1, "out_fd": -1}


class vmm_virtio_blk_opts(_Opts):
    _c_name_ = "vmm_virtio_blk_opts"
    _fields_ = [("size", c_uint32), ("flags", c_uint32), ("path", c_char_p), ("fd", c_int),
                ("id", c_char_p), ("ops_per_sec", c_uint64), ("bytes_per_sec", c_uint64)]
    _defaults_ = {"fd": -1}


class vmm_virtio_blk_stats(Structure):
    _c_name_ = "vmm_virtio_blk_stats"
    _fields_ = [(n, c_uint64) for n in ("reads", "writes", "flushes", "discards",
                                        "write_zeroes", "get_ids", "bytes_read",
                                        "bytes_written", "errors", "throttled")]


class vmm_virtio_rng_opts(_Opts):
    _c_name_ = "vmm_virtio_rng_opts"
    _fields_ = [("size", c_uint32), ("max_bytes_per_request", c_uint32)]


# ---- snapshot.h ----
class vmm_snapshot_save_opts(_Opts):
    _c_name_ = "vmm_snapshot_save_opts"
    _fields_ = [("size", c_uint32), ("flags", c_uint32), ("state_path", c_char_p),
                ("state_fd", c_int), ("mem_path", c_char_p), ("mem_fd", c_int),
                ("devices", POINTER(c_void_p)), ("nr_devices", c_size_t)]
    _defaults_ = {"state_fd": -1, "mem_fd": -1}


class vmm_snapshot_restore_opts(_Opts):
    _c_name_ = "vmm_snapshot_restore_opts"
    _fields_ = [("size", c_uint32), ("flags", c_uint32), ("state_buf", c_void_p),
                ("state_len", c_size_t), ("state_path", c_char_p), ("state_fd", c_int),
                ("mem_path", c_char_p), ("mem_fd", c_int), ("region_fds", POINTER(c_int)),
                ("nr_region_fds", c_size_t), ("mem_mode", c_enum),
                ("vm_opts", POINTER(vmm_vm_opts))]
    _defaults_ = {"state_fd": -1, "mem_fd": -1}


class vmm_snapshot_take_opts(_Opts):
    _c_name_ = "vmm_snapshot_take_opts"
    _fields_ = [("size", c_uint32), ("flags", c_uint32), ("devices", POINTER(c_void_p)),
                ("nr_devices", c_size_t)]


class vmm_snapshot_reset_opts(_Opts):
    _c_name_ = "vmm_snapshot_reset_opts"
    _fields_ = [("size", c_uint32), ("flags", c_uint32), ("devices", POINTER(c_void_p)),
                ("nr_devices", c_size_t)]


class vmm_snapshot_reset_stats(_Opts):
    _c_name_ = "vmm_snapshot_reset_stats"
    _fields_ = [("size", c_uint32), ("nr_vcpus", c_uint32), ("pages_copied", c_uint64),
                ("runs", c_uint64), ("devices", c_uint64), ("ns_total", c_uint64),
                ("ns_memory", c_uint64), ("ns_vcpus", c_uint64)]


# ---- sandbox.h ----
SANDBOX_HOST_FN = CFUNCTYPE(c_int, c_void_p, c_void_p, POINTER(c_uint64), c_uint32,
                            POINTER(c_uint64))
SANDBOX_OUTPUT_FN = CFUNCTYPE(None, c_void_p, c_void_p, c_size_t)


class vmm_sandbox_host_func(Structure):
    _c_name_ = "vmm_sandbox_host_func"
    _fields_ = [("id", c_uint32), ("name", c_char_p), ("fn", SANDBOX_HOST_FN),
                ("ctx", c_void_p)]


class vmm_sandbox_opts(_Opts):
    _c_name_ = "vmm_sandbox_opts"
    _fields_ = [("size", c_uint32), ("flags", c_uint32), ("elf", c_void_p),
                ("elf_size", c_size_t), ("elf_path", c_char_p), ("mem_size", c_uint64),
                ("io_size", c_uint64), ("deadline_ns", c_uint64),
                ("init_deadline_ns", c_uint64),
                ("host_funcs", POINTER(vmm_sandbox_host_func)), ("nr_host_funcs", c_size_t),
                ("output", SANDBOX_OUTPUT_FN), ("output_ctx", c_void_p),
                ("vm_opts", POINTER(vmm_vm_opts))]


class vmm_sandbox_in(Structure):
    _c_name_ = "vmm_sandbox_in"
    _fields_ = [("data", c_void_p), ("len", c_size_t)]


class vmm_sandbox_out(Structure):
    _c_name_ = "vmm_sandbox_out"
    _fields_ = [("data", c_void_p), ("cap", c_size_t), ("len", c_size_t)]


class vmm_sandbox_call_opts(_Opts):
    _c_name_ = "vmm_sandbox_call_opts"
    _fields_ = [("size", c_uint32), ("flags", c_uint32), ("in", POINTER(vmm_sandbox_in)),
                ("nr_in", c_size_t), ("out", POINTER(vmm_sandbox_out)), ("nr_out", c_size_t),
                ("deadline_ns", c_uint64)]


class vmm_sandbox_stats(_Opts):
    _c_name_ = "vmm_sandbox_stats"
    _fields_ = [("size", c_uint32), ("calls", c_uint64), ("errors", c_uint64),
                ("resets", c_uint64), ("host_calls", c_uint64), ("pages_reset", c_uint64)]


# Every mirrored struct, for the layout test.
ALL = [vmm_vm_opts, vmm_mem_region_opts, vmm_mem_region_info, vmm_regs, vmm_segment,
       vmm_dtable, vmm_sregs, vmm_fpu, vmm_vcpu_opts, vmm_long_mode_opts, vmm_exit,
       vmm_bus_ops, vmm_elf_info, vmm_virtio_mmio_opts, vmm_virtio_mmio_stats,
       vmm_virtio_console_opts, vmm_virtio_blk_opts, vmm_virtio_blk_stats,
       vmm_virtio_rng_opts, vmm_snapshot_save_opts, vmm_snapshot_restore_opts,
       vmm_snapshot_take_opts, vmm_snapshot_reset_opts, vmm_snapshot_reset_stats,
       vmm_sandbox_host_func, vmm_sandbox_opts, vmm_sandbox_in, vmm_sandbox_out,
       vmm_sandbox_call_opts, vmm_sandbox_stats]
