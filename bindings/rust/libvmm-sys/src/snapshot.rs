//! snapshot.h, sandbox.h.
use crate::core_::*;
use crate::ctype::{HasLayout, StructLayout};
use crate::virtio::*;
use std::os::raw::{c_char, c_int, c_void};

c_opaque! {
    /// An in-memory snapshot (snapshot.h).
    vmm_snapshot,
    /// A function sandbox (sandbox.h).
    vmm_sandbox,
}

c_consts! {
    pub const VMM_SNAPSHOT_MAX_STATE_SIZE: u32 = 64 << 20;
    pub const VMM_SNAPSHOT_FORMAT_VERSION: u32 = 1;
    pub const VMM_SNAPSHOT_SAVE_MEM_IN_PLACE: u32 = 1 << 0;
    pub const VMM_SNAPSHOT_SAVE_SYNC: u32 = 1 << 1;
    pub const VMM_SNAPSHOT_RESTORE_ANY_TSC_KHZ: u32 = 1 << 0;
    pub const VMM_SNAPSHOT_RESET_MEMORY_ONLY: u32 = 1 << 0;

    pub const VMM_SANDBOX_MAX_ARGS: u32 = 6;
    pub const VMM_SANDBOX_MAX_BUFS: u32 = 8;
    pub const VMM_SANDBOX_NO_RESET: u32 = 1 << 0;
    pub const VMM_SANDBOX_RING0: u32 = 1 << 1;
    pub const VMM_SANDBOX_CALL_KEEP_STATE: u32 = 1 << 0;
}

c_enum! {
    pub enum vmm_snapshot_mem_mode {
        VMM_SNAPSHOT_MEM_EAGER = 0,
        VMM_SNAPSHOT_MEM_LAZY = 1,
        VMM_SNAPSHOT_MEM_SHARED = 2,
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vmm_snapshot_save_opts {
    pub size: u32,
    pub flags: u32,
    pub state_path: *const c_char,
    pub state_fd: c_int,
    pub mem_path: *const c_char,
    pub mem_fd: c_int,
    pub devices: *const *mut vmm_virtio_mmio,
    pub nr_devices: usize,
}

impl Default for vmm_snapshot_save_opts {
    /// VMM_SNAPSHOT_SAVE_OPTS_INIT
    fn default() -> Self {
        vmm_snapshot_save_opts {
            size: core::mem::size_of::<Self>() as u32,
            flags: 0,
            state_path: core::ptr::null(),
            state_fd: -1,
            mem_path: core::ptr::null(),
            mem_fd: -1,
            devices: core::ptr::null(),
            nr_devices: 0,
        }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vmm_snapshot_restore_opts {
    pub size: u32,
    pub flags: u32,
    pub state_buf: *const c_void,
    pub state_len: usize,
    pub state_path: *const c_char,
    pub state_fd: c_int,
    pub mem_path: *const c_char,
    pub mem_fd: c_int,
    pub region_fds: *const c_int,
    pub nr_region_fds: usize,
    pub mem_mode: vmm_snapshot_mem_mode,
    pub vm_opts: *const vmm_vm_opts,
}

impl Default for vmm_snapshot_restore_opts {
    /// VMM_SNAPSHOT_RESTORE_OPTS_INIT
    fn default() -> Self {
        vmm_snapshot_restore_opts {
            size: core::mem::size_of::<Self>() as u32,
            flags: 0,
            state_buf: core::ptr::null(),
            state_len: 0,
            state_path: core::ptr::null(),
            state_fd: -1,
            mem_path: core::ptr::null(),
            mem_fd: -1,
            region_fds: core::ptr::null(),
            nr_region_fds: 0,
            mem_mode: VMM_SNAPSHOT_MEM_EAGER,
            vm_opts: core::ptr::null(),
        }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vmm_snapshot_take_opts {
    pub size: u32,
    pub flags: u32,
    pub devices: *const *mut vmm_virtio_mmio,
    pub nr_devices: usize,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct vmm_snapshot_reset_stats {
    pub size: u32,
    pub nr_vcpus: u32,
    pub pages_copied: u64,
    pub runs: u64,
    pub devices: u64,
    pub ns_total: u64,
    pub ns_memory: u64,
    pub ns_vcpus: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vmm_snapshot_reset_opts {
    pub size: u32,
    pub flags: u32,
    pub devices: *const *mut vmm_virtio_mmio,
    pub nr_devices: usize,
}

pub type vmm_sandbox_host_fn = Option<
    unsafe extern "C" fn(ctx: *mut c_void, sb: *mut vmm_sandbox, args: *const u64, nargs: u32, ret: *mut u64) -> c_int,
>;
pub type vmm_sandbox_output_fn = Option<unsafe extern "C" fn(ctx: *mut c_void, data: *const c_char, len: usize)>;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vmm_sandbox_host_func {
    pub id: u32,
    pub name: *const c_char,
    pub fn_: vmm_sandbox_host_fn,
    pub ctx: *mut c_void,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vmm_sandbox_opts {
    pub size: u32,
    pub flags: u32,
    pub elf: *const c_void,
    pub elf_size: usize,
    pub elf_path: *const c_char,
    pub mem_size: u64,
    pub io_size: u64,
    pub deadline_ns: u64,
    pub init_deadline_ns: u64,
    pub host_funcs: *const vmm_sandbox_host_func,
    pub nr_host_funcs: usize,
    pub output: vmm_sandbox_output_fn,
    pub output_ctx: *mut c_void,
    pub vm_opts: *const vmm_vm_opts,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vmm_sandbox_in {
    pub data: *const c_void,
    pub len: usize,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vmm_sandbox_out {
    pub data: *mut c_void,
    pub cap: usize,
    pub len: usize,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vmm_sandbox_call_opts {
    pub size: u32,
    pub flags: u32,
    pub in_: *const vmm_sandbox_in,
    pub nr_in: usize,
    pub out: *mut vmm_sandbox_out,
    pub nr_out: usize,
    pub deadline_ns: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct vmm_sandbox_stats {
    pub size: u32,
    pub calls: u64,
    pub errors: u64,
    pub resets: u64,
    pub host_calls: u64,
    pub pages_reset: u64,
}

size_and_zeros_default!(vmm_snapshot_take_opts, vmm_snapshot_reset_stats, vmm_snapshot_reset_opts,
                        vmm_sandbox_opts, vmm_sandbox_call_opts, vmm_sandbox_stats);
zeroed_default!(vmm_sandbox_host_func, vmm_sandbox_in, vmm_sandbox_out);

c_named!(vmm_snapshot_save_opts, vmm_snapshot_restore_opts, vmm_snapshot_take_opts, vmm_snapshot_reset_stats,
         vmm_snapshot_reset_opts, vmm_sandbox_host_func, vmm_sandbox_opts, vmm_sandbox_in, vmm_sandbox_out,
         vmm_sandbox_call_opts, vmm_sandbox_stats);

layout!(struct vmm_snapshot_save_opts init { size, flags, state_path, state_fd, mem_path, mem_fd, devices, nr_devices });
layout!(struct vmm_snapshot_restore_opts init { size, flags, state_buf, state_len, state_path, state_fd, mem_path,
        mem_fd, region_fds, nr_region_fds, mem_mode, vm_opts });
layout!(struct vmm_snapshot_take_opts init { size, flags, devices, nr_devices });
layout!(struct vmm_snapshot_reset_stats init { size, nr_vcpus, pages_copied, runs, devices, ns_total, ns_memory, ns_vcpus });
layout!(struct vmm_snapshot_reset_opts init { size, flags, devices, nr_devices });
layout!(struct vmm_sandbox_opts init { size, flags, elf, elf_size, elf_path, mem_size, io_size, deadline_ns,
        init_deadline_ns, host_funcs, nr_host_funcs, output, output_ctx, vm_opts });
layout!(struct vmm_sandbox_out { data, cap, len });
layout!(struct vmm_sandbox_in { data, len });
layout!(struct vmm_sandbox_stats init { size, calls, errors, resets, host_calls, pages_reset });

layout!(struct vmm_sandbox_host_func { id, name, fn_ = "fn", ctx });
layout!(struct vmm_sandbox_call_opts init { size, flags, in_ = "in", nr_in, out, nr_out, deadline_ns });

#[doc(hidden)]
pub(crate) fn c_layouts() -> Vec<StructLayout> {
    vec![
        vmm_snapshot_save_opts::layout(),
        vmm_snapshot_restore_opts::layout(),
        vmm_snapshot_take_opts::layout(),
        vmm_snapshot_reset_stats::layout(),
        vmm_snapshot_reset_opts::layout(),
        vmm_sandbox_opts::layout(),
        vmm_sandbox_in::layout(),
        vmm_sandbox_out::layout(),
        vmm_sandbox_stats::layout(),
        vmm_sandbox_host_func::layout(),
        vmm_sandbox_call_opts::layout(),
    ]
}

#[doc(hidden)]
pub(crate) fn c_enum_values() -> Vec<(&'static str, i128)> {
    Vec::new()
}

c_fns! {
    pub fn vmm_snapshot_save(vm: *mut vmm_vm, opts: *const vmm_snapshot_save_opts) -> c_int;
    pub fn vmm_snapshot_restore(out: *mut *mut vmm_vm, opts: *const vmm_snapshot_restore_opts) -> c_int;
    pub fn vmm_snapshot_take(vm: *mut vmm_vm, opts: *const vmm_snapshot_take_opts, out: *mut *mut vmm_snapshot) -> c_int;
    pub fn vmm_snapshot_open(out: *mut *mut vmm_snapshot, opts: *const vmm_snapshot_restore_opts) -> c_int;
    pub fn vmm_snapshot_write(snap: *const vmm_snapshot, opts: *const vmm_snapshot_save_opts) -> c_int;
    pub fn vmm_snapshot_clone(snap: *mut vmm_snapshot, host_opts: *const vmm_vm_opts, out: *mut *mut vmm_vm) -> c_int;
    pub fn vmm_snapshot_reset(snap: *mut vmm_snapshot, vm: *mut vmm_vm, stats: *mut vmm_snapshot_reset_stats) -> c_int;
    pub fn vmm_snapshot_reset_with(snap: *mut vmm_snapshot, vm: *mut vmm_vm, opts: *const vmm_snapshot_reset_opts,
                                   stats: *mut vmm_snapshot_reset_stats) -> c_int;
    pub fn vmm_snapshot_device_count(snap: *const vmm_snapshot) -> usize;
    pub fn vmm_snapshot_device_state(snap: *const vmm_snapshot, i: usize, ptr: *mut *const c_void, len: *mut usize) -> c_int;
    pub fn vmm_snapshot_mem_size(snap: *const vmm_snapshot) -> u64;
    pub fn vmm_snapshot_vcpu_count(snap: *const vmm_snapshot) -> usize;
    pub fn vmm_snapshot_free(snap: *mut vmm_snapshot);

    pub fn vmm_sandbox_create(out: *mut *mut vmm_sandbox, opts: *const vmm_sandbox_opts) -> c_int;
    pub fn vmm_sandbox_destroy(sb: *mut vmm_sandbox);
    pub fn vmm_sandbox_call(sb: *mut vmm_sandbox, f: *const c_char, args: *const u64, nargs: usize,
                            opts: *const vmm_sandbox_call_opts, ret: *mut u64) -> c_int;
    pub fn vmm_sandbox_reset(sb: *mut vmm_sandbox) -> c_int;
    pub fn vmm_sandbox_symbol(sb: *const vmm_sandbox, name: *const c_char, value: *mut u64) -> c_int;
    pub fn vmm_sandbox_read(sb: *mut vmm_sandbox, addr: u64, buf: *mut c_void, len: usize) -> c_int;
    pub fn vmm_sandbox_write(sb: *mut vmm_sandbox, addr: u64, buf: *const c_void, len: usize) -> c_int;
    pub fn vmm_sandbox_ptr(sb: *mut vmm_sandbox, addr: u64, len: usize, writable: bool, host: *mut *mut c_void) -> c_int;
    pub fn vmm_sandbox_vm(sb: *mut vmm_sandbox) -> *mut vmm_vm;
    pub fn vmm_sandbox_vcpu(sb: *mut vmm_sandbox) -> *mut vmm_vcpu;
    pub fn vmm_sandbox_get_stats(sb: *const vmm_sandbox, stats: *mut vmm_sandbox_stats) -> c_int;
}
