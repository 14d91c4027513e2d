//! vcpu.h, cpuid.h.
use crate::core_::*;
use std::os::raw::{c_char, c_int, c_uint, c_void};

c_consts! {
    pub const VMM_LONG_MODE_FAULT_IDT: u32 = 1 << 0;
    pub const VMM_LONG_MODE_SYSTEM_AREA_SIZE: u32 = 0x20000;
    pub const VMM_CPUID_SIGNIFICANT_INDEX: u32 = 1 << 0;
    pub const VMM_CPUID_MAX_ENTRIES: i32 = 256;
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct vmm_regs {
    pub rax: u64, pub rbx: u64, pub rcx: u64, pub rdx: u64,
    pub rsi: u64, pub rdi: u64, pub rsp: u64, pub rbp: u64,
    pub r8: u64, pub r9: u64, pub r10: u64, pub r11: u64,
    pub r12: u64, pub r13: u64, pub r14: u64, pub r15: u64,
    pub rip: u64, pub rflags: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct vmm_segment {
    pub base: u64,
    pub limit: u32,
    pub selector: u16,
    pub type_: u8,
    pub present: u8,
    pub dpl: u8,
    pub db: u8,
    pub s: u8,
    pub l: u8,
    pub g: u8,
    pub avl: u8,
    pub unusable: u8,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct vmm_dtable {
    pub base: u64,
    pub limit: u16,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct vmm_sregs {
    pub cs: vmm_segment, pub ds: vmm_segment, pub es: vmm_segment, pub fs: vmm_segment,
    pub gs: vmm_segment, pub ss: vmm_segment, pub tr: vmm_segment, pub ldt: vmm_segment,
    pub gdt: vmm_dtable,
    pub idt: vmm_dtable,
    pub cr0: u64, pub cr2: u64, pub cr3: u64, pub cr4: u64, pub cr8: u64,
    pub efer: u64,
    pub apic_base: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct vmm_fpu {
    pub fpr: [[u8; 16]; 8],
    pub fcw: u16,
    pub fsw: u16,
    pub ftwx: u8,
    pub last_opcode: u16,
    pub last_ip: u64,
    pub last_dp: u64,
    pub xmm: [[u8; 16]; 16],
    pub mxcsr: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vmm_vcpu_opts {
    pub size: u32,
    pub id: u32,
    pub cpuid: *const vmm_cpuid,
}

impl Default for vmm_vcpu_opts {
    /// VMM_VCPU_OPTS_INIT
    fn default() -> Self {
        vmm_vcpu_opts { size: core::mem::size_of::<Self>() as u32, id: 0, cpuid: core::ptr::null() }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct vmm_long_mode_opts {
    pub size: u32,
    pub flags: u32,
    pub cpl: u32,
    pub entry: u64,
    pub stack: u64,
    pub kernel_stack: u64,
    pub system_area: u64,
    pub identity_map: u64,
}

impl Default for vmm_long_mode_opts {
    /// VMM_LONG_MODE_OPTS_INIT
    fn default() -> Self {
        vmm_long_mode_opts {
            size: core::mem::size_of::<Self>() as u32,
            flags: VMM_LONG_MODE_FAULT_IDT,
            cpl: 0,
            entry: 0,
            stack: 0,
            kernel_stack: 0,
            system_area: 0,
            identity_map: 0,
        }
    }
}

c_enum! {
    pub enum vmm_exit_reason {
        VMM_EXIT_HLT = 1,
        VMM_EXIT_SHUTDOWN = 2,
        VMM_EXIT_GUEST = 3,
        VMM_EXIT_FAULT = 4,
        VMM_EXIT_KICK = 5,
        VMM_EXIT_IO = 6,
        VMM_EXIT_SYSTEM_EVENT = 7,
        VMM_EXIT_INTERNAL_ERROR = 8,
    }
}

/// vmm_exit.u.guest
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct vmm_exit_guest {
    pub code: u64,
}

/// vmm_exit.u.fault
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct vmm_exit_fault {
    pub vector: u32,
    pub has_error_code: u32,
    pub error_code: u64,
    pub rip: u64,
    pub cr2: u64,
    pub cs: u64,
}

/// vmm_exit.u.io
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct vmm_exit_io {
    pub addr: u64,
    pub size: u32,
    pub is_write: u32,
    pub is_mmio: u32,
    pub value: u64,
}

/// vmm_exit.u.system
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct vmm_exit_system {
    pub type_: u32,
}

/// vmm_exit.u.internal
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct vmm_exit_internal {
    pub rip: u64,
    pub suberror: u32,
    pub insn_len: u32,
    pub insn: [u8; 16],
}

/// vmm_exit.u (anonymous in the header)
#[repr(C)]
#[derive(Clone, Copy)]
pub union vmm_exit_u {
    pub guest: vmm_exit_guest,
    pub fault: vmm_exit_fault,
    pub io: vmm_exit_io,
    pub system: vmm_exit_system,
    pub internal: vmm_exit_internal,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct vmm_exit {
    pub reason: vmm_exit_reason,
    pub u: vmm_exit_u,
}

impl core::fmt::Debug for vmm_exit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("vmm_exit").field("reason", &self.reason).finish_non_exhaustive()
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct vmm_cpuid_entry {
    pub function: u32,
    pub index: u32,
    pub flags: u32,
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

c_enum! {
    pub enum vmm_cpuid_reg {
        VMM_CPUID_EAX = 0,
        VMM_CPUID_EBX = 1,
        VMM_CPUID_ECX = 2,
        VMM_CPUID_EDX = 3,
    }
}

c_named!(vmm_regs, vmm_segment, vmm_dtable, vmm_sregs, vmm_fpu, vmm_vcpu_opts, vmm_long_mode_opts,
         vmm_exit, vmm_exit_u, vmm_exit_guest, vmm_exit_fault, vmm_exit_io, vmm_exit_system,
         vmm_exit_internal, vmm_cpuid_entry);
zeroed_default!(vmm_exit, vmm_exit_u);

// The header spells two fields `type`, a Rust keyword: here they are `type_`.
layout!(struct vmm_regs { rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp, r8, r9, r10, r11, r12, r13, r14, r15, rip, rflags });
layout!(struct vmm_dtable { base, limit });
layout!(struct vmm_sregs { cs, ds, es, fs, gs, ss, tr, ldt, gdt, idt, cr0, cr2, cr3, cr4, cr8, efer, apic_base });
layout!(struct vmm_fpu { fpr, fcw, fsw, ftwx, last_opcode, last_ip, last_dp, xmm, mxcsr });
layout!(struct vmm_vcpu_opts init { size, id, cpuid });
layout!(struct vmm_long_mode_opts init { size, flags, cpl, entry, stack, kernel_stack, system_area, identity_map });
layout!(struct vmm_exit { reason, u @anon });
layout!(union vmm_exit_u in "vmm_exit" . "u" { guest, fault, io, system, internal });
layout!(anon vmm_exit_guest in "vmm_exit" . "u.guest" { code });
layout!(anon vmm_exit_fault in "vmm_exit" . "u.fault" { vector, has_error_code, error_code, rip, cr2, cs });
layout!(anon vmm_exit_io in "vmm_exit" . "u.io" { addr, size, is_write, is_mmio, value });
layout!(anon vmm_exit_internal in "vmm_exit" . "u.internal" { rip, suberror, insn_len, insn });
layout!(struct vmm_cpuid_entry { function, index, flags, eax, ebx, ecx, edx });

layout!(struct vmm_segment { base, limit, selector, type_ = "type", present, dpl, db, s, l, g, avl, unusable });
layout!(anon vmm_exit_system in "vmm_exit" . "u.system" { type_ = "type" });

pub type vmm_vcpu_exit_fn =
    Option<unsafe extern "C" fn(ctx: *mut c_void, vcpu: *mut vmm_vcpu, exit: *const vmm_exit, err: c_int) -> c_int>;
pub type vmm_cpuid_filter_fn = Option<unsafe extern "C" fn(ctx: *mut c_void, entry: *mut vmm_cpuid_entry) -> c_int>;

c_fns! {
    pub fn vmm_vcpu_create(out: *mut *mut vmm_vcpu, vm: *mut vmm_vm, opts: *const vmm_vcpu_opts) -> c_int;
    pub fn vmm_vcpu_destroy(vcpu: *mut vmm_vcpu);
    pub fn vmm_vcpu_id(vcpu: *const vmm_vcpu) -> u32;
    pub fn vmm_vcpu_vm(vcpu: *const vmm_vcpu) -> *mut vmm_vm;
    pub fn vmm_vcpu_get_regs(vcpu: *mut vmm_vcpu, regs: *mut vmm_regs) -> c_int;
    pub fn vmm_vcpu_set_regs(vcpu: *mut vmm_vcpu, regs: *const vmm_regs) -> c_int;
    pub fn vmm_vcpu_get_sregs(vcpu: *mut vmm_vcpu, sregs: *mut vmm_sregs) -> c_int;
    pub fn vmm_vcpu_set_sregs(vcpu: *mut vmm_vcpu, sregs: *const vmm_sregs) -> c_int;
    pub fn vmm_vcpu_get_fpu(vcpu: *mut vmm_vcpu, fpu: *mut vmm_fpu) -> c_int;
    pub fn vmm_vcpu_set_fpu(vcpu: *mut vmm_vcpu, fpu: *const vmm_fpu) -> c_int;
    pub fn vmm_vcpu_get_msrs(vcpu: *mut vmm_vcpu, idx: *const u32, val: *mut u64, n: usize) -> c_int;
    pub fn vmm_vcpu_set_msrs(vcpu: *mut vmm_vcpu, idx: *const u32, val: *const u64, n: usize) -> c_int;
    pub fn vmm_vcpu_set_cpuid(vcpu: *mut vmm_vcpu, cpuid: *const vmm_cpuid) -> c_int;
    pub fn vmm_vcpu_translate(vcpu: *mut vmm_vcpu, gva: u64, gpa: *mut u64) -> c_int;
    pub fn vmm_vcpu_setup_long_mode(vcpu: *mut vmm_vcpu, opts: *const vmm_long_mode_opts) -> c_int;
    pub fn vmm_vcpu_set_idt_gate(vcpu: *mut vmm_vcpu, vector: u8, handler: u64, dpl: c_uint) -> c_int;
    pub fn vmm_vcpu_run(vcpu: *mut vmm_vcpu, exit: *mut vmm_exit) -> c_int;
    pub fn vmm_vcpu_kick(vcpu: *mut vmm_vcpu);
    pub fn vmm_vcpu_start(vcpu: *mut vmm_vcpu, f: vmm_vcpu_exit_fn, ctx: *mut c_void) -> c_int;
    pub fn vmm_vcpu_join(vcpu: *mut vmm_vcpu, result: *mut c_int) -> c_int;

    pub fn vmm_cpuid_create(out: *mut *mut vmm_cpuid) -> c_int;
    pub fn vmm_cpuid_create_default(out: *mut *mut vmm_cpuid, vm: *mut vmm_vm, vcpu_id: u32) -> c_int;
    pub fn vmm_cpuid_clone(out: *mut *mut vmm_cpuid, src: *const vmm_cpuid) -> c_int;
    pub fn vmm_cpuid_destroy(cpuid: *mut vmm_cpuid);
    pub fn vmm_cpuid_count(cpuid: *const vmm_cpuid) -> usize;
    pub fn vmm_cpuid_entry_at(cpuid: *const vmm_cpuid, i: usize, out: *mut vmm_cpuid_entry) -> c_int;
    pub fn vmm_cpuid_get(cpuid: *const vmm_cpuid, function: u32, index: u32, out: *mut vmm_cpuid_entry) -> c_int;
    pub fn vmm_cpuid_set(cpuid: *mut vmm_cpuid, entry: *const vmm_cpuid_entry) -> c_int;
    pub fn vmm_cpuid_remove(cpuid: *mut vmm_cpuid, function: u32, index: u32) -> c_int;
    pub fn vmm_cpuid_update(cpuid: *mut vmm_cpuid, function: u32, index: u32, reg: vmm_cpuid_reg,
                            clear: u32, set: u32) -> c_int;
    pub fn vmm_cpuid_hide_feature(cpuid: *mut vmm_cpuid, name: *const c_char) -> c_int;
    pub fn vmm_cpuid_feature_name(i: usize) -> *const c_char;
    pub fn vmm_cpuid_filter(cpuid: *mut vmm_cpuid, f: vmm_cpuid_filter_fn, ctx: *mut c_void) -> c_int;
}
