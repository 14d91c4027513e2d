//! elf.h, acpi.h, fdt.h, boot.h.
use crate::core_::*;
use std::os::raw::{c_char, c_int, c_void};

c_consts! {
    pub const VMM_ACPI_AREA_GPA: u64 = 0xe0000;
    pub const VMM_ACPI_AREA_SIZE: u64 = 0x20000;
    pub const VMM_ACPI_MAX_CPUS: u32 = 1024;
    pub const VMM_ACPI_MAX_VIRTIO: u32 = 256;
    pub const VMM_ACPI_SLP_TYP_S5: u32 = 5;
    pub const VMM_ACPI_SLP_EN: u32 = 0x20;
    pub const VMM_ACPI_SLEEP_S5_OFF: u32 = (VMM_ACPI_SLP_TYP_S5 << 2) | VMM_ACPI_SLP_EN;
    pub const VMM_ACPI_SLEEP_WAK_STS: u32 = 0x80;
    pub const VMM_ACPI_RESET_PORT: u32 = 0x64;
    pub const VMM_ACPI_RESET_VALUE: u32 = 0xfe;
    pub const VMM_ACPI_COM1: u32 = 1 << 0;
    pub const VMM_ACPI_I8042: u32 = 1 << 1;
    pub const VMM_ACPI_RTC: u32 = 1 << 2;
    pub const VMM_ACPI_IRQ0_TO_GSI2: u32 = 1 << 3;
    pub const VMM_ACPI_PIC: u32 = 1 << 5;
    pub const VMM_ACPI_XAPIC_ENTRIES: u32 = 1 << 4;
    pub const VMM_ACPI_IRQ_LEVEL: u32 = 1 << 0;
    pub const VMM_ACPI_IRQ_ACTIVE_LOW: u32 = 1 << 1;
    pub const VMM_ACPI_IRQ_SHARED: u32 = 1 << 2;
    pub const VMM_ACPI_MAX_TABLES: i32 = 16;

    pub const VMM_FDT_MAX_CPUS: u32 = 1024;
    pub const VMM_FDT_MAX_MEMORY: u32 = 64;
    pub const VMM_FDT_MAX_VIRTIO: u32 = 256;
    pub const VMM_FDT_SERIAL: u32 = 1 << 0;
    pub const VMM_FDT_IRQ_LEVEL: u32 = 1 << 0;
    pub const VMM_FDT_IRQ_ACTIVE_LOW: u32 = 1 << 1;

    pub const VMM_E820_RAM: u32 = 1;
    pub const VMM_E820_RESERVED: u32 = 2;
    pub const VMM_E820_ACPI: u32 = 3;
    pub const VMM_E820_NVS: u32 = 4;
    pub const VMM_E820_UNUSABLE: u32 = 5;
    pub const VMM_E820_PMEM: u32 = 7;
    pub const VMM_E820_MAX_ENTRIES: u32 = 128;
    pub const VMM_CMDLINE_DEFAULT_MAX: u32 = 2047;
    pub const VMM_CMDLINE_LIMIT: u32 = 65535;
    pub const VMM_LINUX_BOOT_AREA_START: u32 = 0x10000;
    pub const VMM_LINUX_BOOT_AREA_END: u32 = 0x50000;
    pub const VMM_LINUX_BOOT_PARAMS: u32 = 0x30000;
    pub const VMM_LINUX_CMDLINE: u32 = 0x40000;
    pub const VMM_LINUX_SETUP_DTB: u32 = 2;
    pub const VMM_LINUX_SETUP_RNG_SEED: u32 = 9;
    pub const VMM_LINUX_MAX_SETUP_DATA: u32 = 16;
    pub const VMM_LINUX_MAX_E820_EXTRA: u32 = 64;
}

c_opaque! {
    /// A kernel command line under construction (boot.h).
    vmm_cmdline,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct vmm_elf_info {
    pub entry: u64,
    pub low: u64,
    pub high: u64,
    pub segments: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct vmm_acpi_virtio_mmio {
    pub base: u64,
    pub size: u64,
    pub gsi: u32,
    pub flags: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vmm_acpi_opts {
    pub size: u32,
    pub flags: u32,
    pub ncpus: u32,
    pub apic_ids: *const u32,
    pub virtio: *const vmm_acpi_virtio_mmio,
    pub nvirtio: u32,
    pub sleep_port: u16,
    pub oem_id: *const c_char,
}

impl Default for vmm_acpi_opts {
    /// VMM_ACPI_OPTS_INIT
    fn default() -> Self {
        vmm_acpi_opts {
            size: core::mem::size_of::<Self>() as u32,
            flags: 0,
            ncpus: 1,
            apic_ids: core::ptr::null(),
            virtio: core::ptr::null(),
            nvirtio: 0,
            sleep_port: 0,
            oem_id: core::ptr::null(),
        }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct vmm_acpi_table_info {
    pub signature: [c_char; 5],
    pub offset: u32,
    pub length: u32,
    pub gpa: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct vmm_acpi_info {
    pub rsdp_gpa: u64,
    pub used: u64,
    pub ntables: u32,
    pub tables: [vmm_acpi_table_info; 16],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct vmm_fdt_range {
    pub base: u64,
    pub size: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct vmm_fdt_virtio_mmio {
    pub base: u64,
    pub size: u64,
    pub gsi: u32,
    pub flags: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vmm_fdt_opts {
    pub size: u32,
    pub flags: u32,
    pub memory: *const vmm_fdt_range,
    pub nmemory: u32,
    pub mem: *mut vmm_mem,
    pub ncpus: u32,
    pub apic_ids: *const u32,
    pub bootargs: *const c_char,
    pub initrd_start: u64,
    pub initrd_size: u64,
    pub virtio: *const vmm_fdt_virtio_mmio,
    pub nvirtio: u32,
}

impl Default for vmm_fdt_opts {
    /// VMM_FDT_OPTS_INIT
    fn default() -> Self {
        vmm_fdt_opts {
            size: core::mem::size_of::<Self>() as u32,
            flags: 0,
            memory: core::ptr::null(),
            nmemory: 0,
            mem: core::ptr::null_mut(),
            ncpus: 1,
            apic_ids: core::ptr::null(),
            bootargs: core::ptr::null(),
            initrd_start: 0,
            initrd_size: 0,
            virtio: core::ptr::null(),
            nvirtio: 0,
        }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct vmm_e820_entry {
    pub addr: u64,
    pub size: u64,
    pub type_: u32,
}

c_enum! {
    pub enum vmm_linux_protocol {
        VMM_LINUX_AUTO = 0,
        VMM_LINUX_BZIMAGE = 1,
        VMM_LINUX_PVH = 2,
        VMM_LINUX_ELF64 = 3,
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vmm_linux_setup_data {
    pub type_: u32,
    pub data: *const c_void,
    pub len: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vmm_linux_opts {
    pub size: u32,
    pub protocol: vmm_linux_protocol,
    pub kernel_path: *const c_char,
    pub kernel: *const c_void,
    pub kernel_size: usize,
    pub initrd_path: *const c_char,
    pub initrd: *const c_void,
    pub initrd_size: usize,
    pub cmdline: *const c_char,
    pub rsdp: u64,
    pub e820_extra: *const vmm_e820_entry,
    pub n_e820_extra: usize,
    pub setup_data: *const vmm_linux_setup_data,
    pub n_setup_data: usize,
}

impl Default for vmm_linux_opts {
    /// VMM_LINUX_OPTS_INIT
    fn default() -> Self {
        // SAFETY: all-zero is valid for every field; then the non-zero ones are set.
        let mut o: Self = unsafe { core::mem::zeroed() };
        o.size = core::mem::size_of::<Self>() as u32;
        o.protocol = VMM_LINUX_AUTO;
        o
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct vmm_linux_info {
    pub protocol: vmm_linux_protocol,
    pub boot_version: u16,
    pub entry: u64,
    pub kernel_addr: u64,
    pub kernel_end: u64,
    pub boot_params: u64,
    pub cmdline_addr: u64,
    pub cmdline_len: u32,
    pub e820_entries: u32,
    pub initrd_addr: u64,
    pub initrd_size: u64,
    pub setup_data: u64,
    pub system_area: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct vmm_linux_kernel {
    pub protocol: vmm_linux_protocol,
    pub boot_version: u16,
    pub xloadflags: u16,
    pub relocatable: bool,
    pub has_pvh: bool,
    pub cmdline_max: u32,
    pub pref_address: u64,
    pub alignment: u64,
    pub init_size: u64,
    pub initrd_max: u64,
    pub entry: u64,
}

c_named!(vmm_elf_info, vmm_acpi_virtio_mmio, vmm_acpi_opts, vmm_acpi_table_info, vmm_acpi_info,
         vmm_fdt_range, vmm_fdt_virtio_mmio, vmm_fdt_opts, vmm_e820_entry, vmm_linux_setup_data,
         vmm_linux_opts, vmm_linux_info, vmm_linux_kernel);
zeroed_default!(vmm_linux_setup_data);

layout!(struct vmm_elf_info { entry, low, high, segments });
layout!(struct vmm_acpi_virtio_mmio { base, size, gsi, flags });
layout!(struct vmm_acpi_opts init { size, flags, ncpus, apic_ids, virtio, nvirtio, sleep_port, oem_id });
layout!(struct vmm_acpi_table_info { signature, offset, length, gpa });
layout!(struct vmm_acpi_info { rsdp_gpa, used, ntables, tables });
layout!(struct vmm_fdt_range { base, size });
layout!(struct vmm_fdt_virtio_mmio { base, size, gsi, flags });
layout!(struct vmm_fdt_opts init { size, flags, memory, nmemory, mem, ncpus, apic_ids, bootargs,
                                   initrd_start, initrd_size, virtio, nvirtio });
layout!(struct vmm_linux_opts init { size, protocol, kernel_path, kernel, kernel_size, initrd_path, initrd,
                                     initrd_size, cmdline, rsdp, e820_extra, n_e820_extra, setup_data,
                                     n_setup_data });
layout!(struct vmm_linux_info { protocol, boot_version, entry, kernel_addr, kernel_end, boot_params,
                                cmdline_addr, cmdline_len, e820_entries, initrd_addr, initrd_size,
                                setup_data, system_area });
layout!(struct vmm_linux_kernel { protocol, boot_version, xloadflags, relocatable, has_pvh, cmdline_max,
                                  pref_address, alignment, init_size, initrd_max, entry });

layout!(struct vmm_e820_entry { addr, size, type_ = "type" });
layout!(struct vmm_linux_setup_data { type_ = "type", data, len });

c_fns! {
    pub fn vmm_elf_load(mem: *mut vmm_mem, image: *const c_void, size: usize, info: *mut vmm_elf_info) -> c_int;
    pub fn vmm_elf_load_file(mem: *mut vmm_mem, path: *const c_char, info: *mut vmm_elf_info) -> c_int;
    pub fn vmm_elf_symbol(image: *const c_void, size: usize, name: *const c_char, value: *mut u64) -> c_int;

    pub fn vmm_acpi_build(opts: *const vmm_acpi_opts, gpa: u64, buf: *mut c_void, cap: usize,
                          info: *mut vmm_acpi_info) -> c_int;
    pub fn vmm_acpi_write(mem: *mut vmm_mem, gpa: u64, len: u64, opts: *const vmm_acpi_opts,
                          info: *mut vmm_acpi_info) -> c_int;

    pub fn vmm_fdt_build(opts: *const vmm_fdt_opts, buf: *mut c_void, cap: usize, size: *mut usize) -> c_int;
    pub fn vmm_fdt_build_alloc(opts: *const vmm_fdt_opts, blob: *mut *mut c_void, size: *mut usize) -> c_int;

    pub fn vmm_e820_build(mem: *mut vmm_mem, extra: *const vmm_e820_entry, nextra: usize,
                          out: *mut vmm_e820_entry, max: usize, count: *mut usize) -> c_int;
    pub fn vmm_cmdline_create(out: *mut *mut vmm_cmdline, max_len: usize) -> c_int;
    pub fn vmm_cmdline_destroy(cl: *mut vmm_cmdline);
    pub fn vmm_cmdline_add(cl: *mut vmm_cmdline, key: *const c_char, value: *const c_char) -> c_int;
    pub fn vmm_cmdline_append(cl: *mut vmm_cmdline, text: *const c_char) -> c_int;
    pub fn vmm_cmdline_has(cl: *const vmm_cmdline, key: *const c_char) -> bool;
    pub fn vmm_cmdline_str(cl: *const vmm_cmdline) -> *const c_char;
    pub fn vmm_cmdline_len(cl: *const vmm_cmdline) -> usize;
    pub fn vmm_linux_probe(image: *const c_void, size: usize, out: *mut vmm_linux_kernel) -> c_int;
    pub fn vmm_linux_load(mem: *mut vmm_mem, bsp: *mut vmm_vcpu, opts: *const vmm_linux_opts,
                          info: *mut vmm_linux_info) -> c_int;
    pub fn vmm_linux_setup_vcpu(bsp: *mut vmm_vcpu, info: *const vmm_linux_info) -> c_int;
    pub fn vmm_linux_prepare_vm(vm: *mut vmm_vm) -> c_int;
    pub fn vmm_linux_prepare_vcpu(vcpu: *mut vmm_vcpu) -> c_int;
    pub fn vmm_linux_host_is_nested() -> bool;
    pub fn vmm_linux_cmdline_nested_defaults(cl: *mut vmm_cmdline) -> c_int;
}

extern "C" {
    /// vmm_cmdline_add with the value formatted by printf(fmt, ...).
    pub fn vmm_cmdline_addf(cl: *mut vmm_cmdline, key: *const c_char, fmt: *const c_char, ...) -> c_int;
}
