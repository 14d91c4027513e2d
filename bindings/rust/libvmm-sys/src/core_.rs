//! common.h, error.h, vm.h, libvmm.h (vmm_version).
use std::os::raw::{c_char, c_int, c_void};

c_opaque! {
    /// A virtual machine (vm.h).
    vmm_vm,
    /// A guest physical memory map (mem.h).
    vmm_mem,
    /// A virtual CPU (vcpu.h).
    vmm_vcpu,
    /// The port I/O and MMIO bus (bus.h).
    vmm_bus,
    /// The interrupt controller (irq.h).
    vmm_irq,
    /// A CPUID table (cpuid.h).
    vmm_cpuid,
}

c_consts! {
    pub const LIBVMM_VERSION_MAJOR: u32 = 0;
    pub const LIBVMM_VERSION_MINOR: u32 = 1;
    pub const LIBVMM_VERSION_PATCH: u32 = 0;
    /// vmm_vm_opts.flags: kernel irqchip without the in-kernel PIT.
    pub const VMM_VM_NO_PIT: u32 = 1 << 0;
    /// vmm_vm_opts.flags: vmm_vcpu_run returns VMM_EXIT_IO for unclaimed accesses.
    pub const VMM_VM_EXIT_ON_UNHANDLED_IO: u32 = 1 << 1;
    pub const VMM_VM_DONTFORK: u32 = 1 << 2;
    pub const VMM_SYSTEM_EVENT_SHUTDOWN: u32 = 1;
    pub const VMM_SYSTEM_EVENT_RESET: u32 = 2;
}

c_enum! {
    /// Interrupt-controller composition.
    pub enum vmm_irqchip_mode {
        VMM_IRQCHIP_KERNEL = 0,
        VMM_IRQCHIP_SPLIT = 1,
        VMM_IRQCHIP_NONE = 2,
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vmm_vm_opts {
    pub size: u32,
    pub flags: u32,
    pub irqchip: vmm_irqchip_mode,
    pub kvm_path: *const c_char,
    pub exit_port: u16,
    pub fault_port: u16,
    pub kick_signal: c_int,
    pub dirty_ring_entries: u32,
}

impl Default for vmm_vm_opts {
    /// VMM_VM_OPTS_INIT
    fn default() -> Self {
        vmm_vm_opts {
            size: core::mem::size_of::<Self>() as u32,
            flags: 0,
            irqchip: VMM_IRQCHIP_KERNEL,
            kvm_path: core::ptr::null(),
            exit_port: 0,
            fault_port: 0,
            kick_signal: 0,
            dirty_ring_entries: 0,
        }
    }
}
c_named!(vmm_vm_opts);
layout!(struct vmm_vm_opts init { size, flags, irqchip, kvm_path, exit_port, fault_port, kick_signal, dirty_ring_entries });

pub type vmm_system_event_fn = Option<unsafe extern "C" fn(ctx: *mut c_void, event: u32)>;

c_fns! {
    pub fn vmm_strerror(err: c_int) -> *const c_char;
    pub fn vmm_last_error() -> *const c_char;
    pub fn vmm_version() -> *const c_char;

    pub fn vmm_vm_create(out: *mut *mut vmm_vm, opts: *const vmm_vm_opts) -> c_int;
    pub fn vmm_vm_destroy(vm: *mut vmm_vm);
    pub fn vmm_vm_mem(vm: *mut vmm_vm) -> *mut vmm_mem;
    pub fn vmm_vm_bus(vm: *mut vmm_vm) -> *mut vmm_bus;
    pub fn vmm_vm_irq(vm: *mut vmm_vm) -> *mut vmm_irq;
    pub fn vmm_vm_exit_port(vm: *const vmm_vm) -> u16;
    pub fn vmm_vm_fault_port(vm: *const vmm_vm) -> u16;
    pub fn vmm_vm_request_stop(vm: *mut vmm_vm, event: u32);
    pub fn vmm_vm_stop_requested(vm: *const vmm_vm) -> u32;
    pub fn vmm_vm_clear_stop(vm: *mut vmm_vm);
    pub fn vmm_vm_vcpu_count(vm: *mut vmm_vm) -> usize;
    pub fn vmm_vm_get_vcpu(vm: *mut vmm_vm, i: usize) -> *mut vmm_vcpu;
}
