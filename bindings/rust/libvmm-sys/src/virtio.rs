//! loop.h, virtio.h, sys/device.h, sys/virtq.h.
use crate::core_::*;
use std::os::raw::{c_char, c_int, c_void};

c_opaque! {
    /// An event loop (loop.h).
    vmm_loop,
    /// A virtio-mmio transport (virtio.h).
    vmm_virtio_mmio,
    /// The transport-side handle of a device (sys/device.h).
    vmm_virtio_dev,
    /// A device not yet attached (sys/device.h).
    vmm_virtio_device,
    /// A split virtqueue (sys/virtq.h).
    vmm_virtq,
}

c_consts! {
    pub const VMM_LOOP_IN: u32 = 1 << 0;
    pub const VMM_LOOP_OUT: u32 = 1 << 1;
    pub const VMM_LOOP_ERR: u32 = 1 << 2;
    pub const VMM_VIRTIO_MMIO_SIZE: u32 = 0x1000;
    pub const VMM_VIRTIO_MAX_QUEUES: i32 = 64;
    pub const VMM_VIRTQ_MAX_SIZE: u32 = 32768;
    pub const VMM_VIRTQ_MAX_INDIRECT: u32 = 65535;
    pub const VMM_VIRTQ_MAX_SEGS: u32 = 1024;
}

pub type vmm_loop_fn = Option<unsafe extern "C" fn(ctx: *mut c_void, fd: c_int, events: u32)>;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct vmm_virtio_mmio_opts {
    pub size: u32,
    pub base: u64,
    pub gsi: u32,
}

impl Default for vmm_virtio_mmio_opts {
    /// VMM_VIRTIO_MMIO_OPTS_INIT
    fn default() -> Self {
        vmm_virtio_mmio_opts { size: core::mem::size_of::<Self>() as u32, base: 0, gsi: 0 }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct vmm_virtio_mmio_stats {
    pub notifies: u64,
    pub interrupts: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vmm_virtio_device_ops {
    pub size: u32,
    pub name: *const c_char,
    pub device_id: u32,
    pub num_queues: u16,
    pub queue_size_max: u16,
    pub features: u64,
    pub config_size: u32,
    pub config_read: Option<unsafe extern "C" fn(ctx: *mut c_void, offset: u32, data: *mut c_void, len: u32)>,
    pub config_write: Option<unsafe extern "C" fn(ctx: *mut c_void, offset: u32, data: *const c_void, len: u32)>,
    pub activate: Option<unsafe extern "C" fn(ctx: *mut c_void, dev: *mut vmm_virtio_dev, features: u64) -> c_int>,
    pub notify: Option<unsafe extern "C" fn(ctx: *mut c_void, dev: *mut vmm_virtio_dev, queue: u16)>,
    pub reset: Option<unsafe extern "C" fn(ctx: *mut c_void, dev: *mut vmm_virtio_dev)>,
    pub destroy: Option<unsafe extern "C" fn(ctx: *mut c_void)>,
    pub save_state: Option<
        unsafe extern "C" fn(ctx: *mut c_void, dev: *mut vmm_virtio_dev, buf: *mut c_void, cap: usize,
                             len: *mut usize) -> c_int,
    >,
    pub load_state:
        Option<unsafe extern "C" fn(ctx: *mut c_void, dev: *mut vmm_virtio_dev, buf: *const c_void, len: usize) -> c_int>,
}

impl Default for vmm_virtio_device_ops {
    /// VMM_VIRTIO_DEVICE_OPS_INIT
    fn default() -> Self {
        // SAFETY: all-zero is valid for every field (null pointers, None).
        let mut o: Self = unsafe { core::mem::zeroed() };
        o.size = core::mem::size_of::<Self>() as u32;
        o
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vmm_virtq_seg {
    pub host: *mut c_void,
    pub len: u32,
    pub gpa: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct vmm_virtq_chain {
    pub head: u16,
    pub n_out: u16,
    pub n_in: u16,
    pub out_bytes: u64,
    pub in_bytes: u64,
    pub segs: [vmm_virtq_seg; VMM_VIRTQ_MAX_SEGS as usize],
}

impl core::fmt::Debug for vmm_virtq_chain {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let n = (self.n_out as usize + self.n_in as usize).min(self.segs.len());
        f.debug_struct("vmm_virtq_chain")
            .field("head", &self.head)
            .field("n_out", &self.n_out)
            .field("n_in", &self.n_in)
            .field("out_bytes", &self.out_bytes)
            .field("in_bytes", &self.in_bytes)
            .field("segs", &&self.segs[..n])
            .finish()
    }
}

c_named!(vmm_virtio_mmio_opts, vmm_virtio_mmio_stats, vmm_virtio_device_ops, vmm_virtq_seg, vmm_virtq_chain);
zeroed_default!(vmm_virtq_seg, vmm_virtq_chain);

layout!(struct vmm_virtio_mmio_opts init { size, base, gsi });
layout!(struct vmm_virtio_mmio_stats { notifies, interrupts });
layout!(struct vmm_virtio_device_ops init { size, name, device_id, num_queues, queue_size_max, features,
        config_size, config_read, config_write, activate, notify, reset, destroy, save_state, load_state });
layout!(struct vmm_virtq_seg { host, len, gpa });
layout!(struct vmm_virtq_chain { head, n_out, n_in, out_bytes, in_bytes, segs });

c_fns! {
    pub fn vmm_loop_create(out: *mut *mut vmm_loop) -> c_int;
    pub fn vmm_loop_destroy(l: *mut vmm_loop);
    pub fn vmm_loop_add(l: *mut vmm_loop, fd: c_int, events: u32, f: vmm_loop_fn, ctx: *mut c_void) -> c_int;
    pub fn vmm_loop_modify(l: *mut vmm_loop, fd: c_int, events: u32) -> c_int;
    pub fn vmm_loop_remove(l: *mut vmm_loop, fd: c_int) -> c_int;
    pub fn vmm_loop_run_once(l: *mut vmm_loop, timeout_ms: c_int) -> c_int;
    pub fn vmm_loop_run(l: *mut vmm_loop) -> c_int;
    pub fn vmm_loop_stop(l: *mut vmm_loop);
    pub fn vmm_loop_call(l: *mut vmm_loop, f: vmm_loop_fn, ctx: *mut c_void) -> c_int;
    pub fn vmm_loop_fd(l: *const vmm_loop) -> c_int;

    pub fn vmm_virtio_mmio_attach(out: *mut *mut vmm_virtio_mmio, vm: *mut vmm_vm, l: *mut vmm_loop,
                                  opts: *const vmm_virtio_mmio_opts, dev: *mut vmm_virtio_device) -> c_int;
    pub fn vmm_virtio_mmio_destroy(t: *mut vmm_virtio_mmio);
    pub fn vmm_virtio_mmio_device(t: *const vmm_virtio_mmio) -> *mut vmm_virtio_device;
    pub fn vmm_virtio_mmio_status(t: *const vmm_virtio_mmio) -> u32;
    pub fn vmm_virtio_mmio_error(t: *const vmm_virtio_mmio, buf: *mut c_char, n: usize) -> *const c_char;
    pub fn vmm_virtio_mmio_cmdline(t: *const vmm_virtio_mmio, buf: *mut c_char, n: usize) -> c_int;
    pub fn vmm_virtio_mmio_get_stats(t: *const vmm_virtio_mmio, out: *mut vmm_virtio_mmio_stats);
    pub fn vmm_virtio_mmio_save_state(t: *mut vmm_virtio_mmio, buf: *mut c_void, cap: usize, len: *mut usize) -> c_int;
    pub fn vmm_virtio_mmio_load_state(t: *mut vmm_virtio_mmio, buf: *const c_void, len: usize) -> c_int;

    pub fn vmm_virtio_device_create(out: *mut *mut vmm_virtio_device, ops: *const vmm_virtio_device_ops,
                                    ctx: *mut c_void) -> c_int;
    pub fn vmm_virtio_device_destroy(dev: *mut vmm_virtio_device);
    pub fn vmm_virtio_device_ctx(dev: *const vmm_virtio_device) -> *mut c_void;
    pub fn vmm_virtio_device_get_ops(dev: *const vmm_virtio_device) -> *const vmm_virtio_device_ops;
    pub fn vmm_virtio_device_dev(dev: *const vmm_virtio_device) -> *mut vmm_virtio_dev;
    pub fn vmm_virtio_dev_queue(dev: *mut vmm_virtio_dev, index: u16) -> *mut vmm_virtq;
    pub fn vmm_virtio_dev_mem(dev: *mut vmm_virtio_dev) -> *mut vmm_mem;
    pub fn vmm_virtio_dev_loop(dev: *mut vmm_virtio_dev) -> *mut vmm_loop;
    pub fn vmm_virtio_dev_features(dev: *const vmm_virtio_dev) -> u64;
    pub fn vmm_virtio_dev_interrupt(dev: *mut vmm_virtio_dev, queue: u16) -> c_int;
    pub fn vmm_virtio_dev_config_changed(dev: *mut vmm_virtio_dev);
    pub fn vmm_virtio_dev_fail(dev: *mut vmm_virtio_dev, why: *const c_char);
    pub fn vmm_virtio_dev_watch(dev: *mut vmm_virtio_dev, fd: c_int, events: u32, f: vmm_loop_fn,
                                ctx: *mut c_void) -> c_int;
    pub fn vmm_virtio_dev_unwatch(dev: *mut vmm_virtio_dev, fd: c_int) -> c_int;
    pub fn vmm_virtio_dev_watch_modify(dev: *mut vmm_virtio_dev, fd: c_int, events: u32) -> c_int;
    pub fn vmm_virtio_dev_reschedule(dev: *mut vmm_virtio_dev, queue: u16);
    pub fn vmm_virtio_dev_lock(dev: *mut vmm_virtio_dev);
    pub fn vmm_virtio_dev_unlock(dev: *mut vmm_virtio_dev);

    pub fn vmm_virtq_create(out: *mut *mut vmm_virtq, size_max: u16) -> c_int;
    pub fn vmm_virtq_destroy(q: *mut vmm_virtq);
    pub fn vmm_virtq_set_size(q: *mut vmm_virtq, size: u16) -> c_int;
    pub fn vmm_virtq_set_addrs(q: *mut vmm_virtq, desc: u64, avail: u64, used: u64) -> c_int;
    pub fn vmm_virtq_set_features(q: *mut vmm_virtq, indirect: bool, event_idx: bool);
    pub fn vmm_virtq_enable(q: *mut vmm_virtq, mem: *mut vmm_mem) -> c_int;
    pub fn vmm_virtq_reset(q: *mut vmm_virtq);
    pub fn vmm_virtq_ready(q: *const vmm_virtq) -> bool;
    pub fn vmm_virtq_broken(q: *const vmm_virtq) -> bool;
    pub fn vmm_virtq_size(q: *const vmm_virtq) -> u16;
    pub fn vmm_virtq_size_max(q: *const vmm_virtq) -> u16;
    pub fn vmm_virtq_addrs(q: *const vmm_virtq, desc: *mut u64, avail: *mut u64, used: *mut u64);
    pub fn vmm_virtq_pop(q: *mut vmm_virtq, mem: *mut vmm_mem, chain: *mut vmm_virtq_chain) -> c_int;
    pub fn vmm_virtq_push(q: *mut vmm_virtq, mem: *mut vmm_mem, head: u16, written: u32) -> c_int;
    pub fn vmm_virtq_need_interrupt(q: *mut vmm_virtq, mem: *mut vmm_mem) -> bool;
    pub fn vmm_virtq_set_notify(q: *mut vmm_virtq, mem: *mut vmm_mem, enable: bool) -> bool;
    pub fn vmm_virtq_chain_read(chain: *const vmm_virtq_chain, offset: u64, buf: *mut c_void, len: usize) -> usize;
    pub fn vmm_virtq_chain_write(chain: *const vmm_virtq_chain, offset: u64, buf: *const c_void, len: usize) -> usize;
}
