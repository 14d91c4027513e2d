//! mem.h, bus.h, irq.h.
use crate::core_::*;
use std::os::raw::{c_char, c_int, c_uint, c_void};

c_consts! {
    pub const VMM_PAGE_SIZE: u32 = 4096;
    pub const VMM_MEM_READONLY: u32 = 1 << 0;
    pub const VMM_MEM_HUGEPAGES: u32 = 1 << 1;
    pub const VMM_MEM_THP: u32 = 1 << 2;
    pub const VMM_MEM_PRIVATE: u32 = 1 << 3;
    pub const VMM_IOEVENTFD_DATAMATCH: u32 = 1 << 0;
    pub const VMM_IRQ_IOAPIC_PINS: i32 = 24;
    pub const VMM_IRQ_IOAPIC_BASE: u64 = 0xfec00000;
    pub const VMM_IRQ_MAX_GSI: i32 = 1024;
}

c_enum! {
    pub enum vmm_mem_backing {
        VMM_MEM_MEMFD = 0,
        VMM_MEM_ANON = 1,
        VMM_MEM_FILE = 2,
        VMM_MEM_HOST = 3,
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vmm_mem_region_opts {
    pub size: u32,
    pub flags: u32,
    pub gpa: u64,
    pub len: u64,
    pub backing: vmm_mem_backing,
    pub fd: c_int,
    pub file_offset: u64,
    pub host: *mut c_void,
    pub name: *const c_char,
}

impl Default for vmm_mem_region_opts {
    /// VMM_MEM_REGION_OPTS_INIT
    fn default() -> Self {
        vmm_mem_region_opts {
            size: core::mem::size_of::<Self>() as u32,
            flags: 0,
            gpa: 0,
            len: 0,
            backing: VMM_MEM_MEMFD,
            fd: -1,
            file_offset: 0,
            host: core::ptr::null_mut(),
            name: core::ptr::null(),
        }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vmm_mem_region_info {
    pub gpa: u64,
    pub len: u64,
    pub host: *mut c_void,
    pub fd: c_int,
    pub file_offset: u64,
    pub flags: u32,
    pub slot: u32,
}

c_enum! {
    pub enum vmm_bus_space {
        VMM_BUS_PIO = 0,
        VMM_BUS_MMIO = 1,
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct vmm_bus_ops {
    pub read: Option<unsafe extern "C" fn(opaque: *mut c_void, offset: u64, size: c_uint) -> u64>,
    pub write: Option<unsafe extern "C" fn(opaque: *mut c_void, offset: u64, size: c_uint, value: u64)>,
}

c_named!(vmm_mem_region_opts, vmm_mem_region_info, vmm_bus_ops);
zeroed_default!(vmm_mem_region_info);
layout!(struct vmm_mem_region_opts init { size, flags, gpa, len, backing, fd, file_offset, host, name });
layout!(struct vmm_mem_region_info { gpa, len, host, fd, file_offset, flags, slot });
layout!(struct vmm_bus_ops { read, write });

pub type vmm_mem_dirty_fn = Option<unsafe extern "C" fn(ctx: *mut c_void, gpa: u64, npages: u64) -> c_int>;

c_fns! {
    pub fn vmm_mem_create(out: *mut *mut vmm_mem) -> c_int;
    pub fn vmm_mem_destroy(mem: *mut vmm_mem);
    pub fn vmm_mem_add_region(mem: *mut vmm_mem, opts: *const vmm_mem_region_opts) -> c_int;
    pub fn vmm_mem_remove_region(mem: *mut vmm_mem, gpa: u64) -> c_int;
    pub fn vmm_mem_region_count(mem: *const vmm_mem) -> usize;
    pub fn vmm_mem_get_region(mem: *const vmm_mem, i: usize, out: *mut vmm_mem_region_info) -> c_int;
    pub fn vmm_mem_translate(mem: *mut vmm_mem, gpa: u64, len: u64, write: bool, host: *mut *mut c_void) -> c_int;
    pub fn vmm_mem_read(mem: *mut vmm_mem, gpa: u64, buf: *mut c_void, len: usize) -> c_int;
    pub fn vmm_mem_write(mem: *mut vmm_mem, gpa: u64, buf: *const c_void, len: usize) -> c_int;
    pub fn vmm_mem_dirty_start(mem: *mut vmm_mem) -> c_int;
    pub fn vmm_mem_dirty_stop(mem: *mut vmm_mem) -> c_int;
    pub fn vmm_mem_dirty_enabled(mem: *const vmm_mem) -> bool;
    pub fn vmm_mem_dirty_collect(mem: *mut vmm_mem, f: vmm_mem_dirty_fn, ctx: *mut c_void) -> c_int;
    pub fn vmm_mem_dirty_bitmap(mem: *mut vmm_mem, region_gpa: u64, bitmap: *mut u64, words: usize) -> c_int;

    pub fn vmm_bus_create(out: *mut *mut vmm_bus) -> c_int;
    pub fn vmm_bus_destroy(bus: *mut vmm_bus);
    pub fn vmm_bus_register(bus: *mut vmm_bus, space: vmm_bus_space, base: u64, len: u64,
                            ops: *const vmm_bus_ops, opaque: *mut c_void) -> c_int;
    pub fn vmm_bus_unregister(bus: *mut vmm_bus, space: vmm_bus_space, base: u64) -> c_int;
    pub fn vmm_bus_read(bus: *mut vmm_bus, space: vmm_bus_space, addr: u64, data: *mut c_void, size: c_uint) -> c_int;
    pub fn vmm_bus_write(bus: *mut vmm_bus, space: vmm_bus_space, addr: u64, data: *const c_void, size: c_uint) -> c_int;
    pub fn vmm_bus_add_ioeventfd(bus: *mut vmm_bus, space: vmm_bus_space, addr: u64, size: c_uint,
                                 fd: c_int, flags: u32, datamatch: u64) -> c_int;
    pub fn vmm_bus_remove_ioeventfd(bus: *mut vmm_bus, space: vmm_bus_space, addr: u64, size: c_uint,
                                    fd: c_int, flags: u32, datamatch: u64) -> c_int;

    pub fn vmm_irq_set_line(irq: *mut vmm_irq, gsi: u32, level: bool) -> c_int;
    pub fn vmm_irq_pulse(irq: *mut vmm_irq, gsi: u32) -> c_int;
    pub fn vmm_irq_msi(irq: *mut vmm_irq, address: u64, data: u32) -> c_int;
    pub fn vmm_irq_route_msi(irq: *mut vmm_irq, gsi: u32, address: u64, data: u32) -> c_int;
    pub fn vmm_irq_unroute(irq: *mut vmm_irq, gsi: u32) -> c_int;
    pub fn vmm_irq_msi_for(apic_id: u32, vector: u8, address: *mut u64, data: *mut u32);
    pub fn vmm_irq_add_irqfd(irq: *mut vmm_irq, fd: c_int, gsi: u32, resample_fd: c_int) -> c_int;
    pub fn vmm_irq_remove_irqfd(irq: *mut vmm_irq, fd: c_int, gsi: u32) -> c_int;
}
