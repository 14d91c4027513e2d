//! virtio_console.h, virtio_blk.h, virtio_net.h, virtio_vsock.h, virtio_rng.h,
//! virtio_balloon.h, uart.h, i8042.h, rtc.h, power.h.
use crate::core_::*;
use crate::virtio::*;
use std::os::raw::{c_char, c_int, c_long, c_void};

c_opaque! {
    /// A 16550A UART (uart.h).
    vmm_uart,
    /// The i8042 keyboard controller (i8042.h).
    vmm_i8042,
    /// The CMOS RTC (rtc.h).
    vmm_rtc,
    /// The ACPI power-off register (power.h).
    vmm_power,
}

c_consts! {
    pub const VMM_BLK_READONLY: u32 = 1 << 0;
    pub const VMM_BLK_DIRECT: u32 = 1 << 1;
    pub const VMM_UART_COM1_PORT: u32 = 0x3f8;
    pub const VMM_UART_COM1_GSI: u32 = 4;
    pub const VMM_UART_COM2_PORT: u32 = 0x2f8;
    pub const VMM_UART_COM2_GSI: u32 = 3;
    pub const VMM_I8042_DATA_PORT: u32 = 0x60;
    pub const VMM_I8042_CMD_PORT: u32 = 0x64;
    pub const VMM_I8042_GSI: u32 = 1;
    pub const VMM_RTC_PORT: u32 = 0x70;
    pub const VMM_POWER_PORT_DEFAULT: u32 = 0x600;
}

c_enum! {
    pub enum vmm_console_backend {
        VMM_CONSOLE_FD = 0,
        VMM_CONSOLE_PTY = 1,
        VMM_CONSOLE_CALLBACK = 2,
    }
}

pub type vmm_console_output_fn = Option<unsafe extern "C" fn(ctx: *mut c_void, data: *const c_void, len: usize)>;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vmm_virtio_console_opts {
    pub size: u32,
    pub backend: vmm_console_backend,
    pub in_fd: c_int,
    pub out_fd: c_int,
    pub output: vmm_console_output_fn,
    pub ctx: *mut c_void,
    pub cols: u16,
    pub rows: u16,
}

impl Default for vmm_virtio_console_opts {
    /// VMM_VIRTIO_CONSOLE_OPTS_INIT
    fn default() -> Self {
        vmm_virtio_console_opts {
            size: core::mem::size_of::<Self>() as u32,
            backend: VMM_CONSOLE_FD,
            in_fd: -1,
            out_fd: -1,
            output: None,
            ctx: core::ptr::null_mut(),
            cols: 0,
            rows: 0,
        }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vmm_virtio_blk_opts {
    pub size: u32,
    pub flags: u32,
    pub path: *const c_char,
    pub fd: c_int,
    pub id: *const c_char,
    pub ops_per_sec: u64,
    pub bytes_per_sec: u64,
}

impl Default for vmm_virtio_blk_opts {
    /// VMM_VIRTIO_BLK_OPTS_INIT
    fn default() -> Self {
        vmm_virtio_blk_opts {
            size: core::mem::size_of::<Self>() as u32,
            flags: 0,
            path: core::ptr::null(),
            fd: -1,
            id: core::ptr::null(),
            ops_per_sec: 0,
            bytes_per_sec: 0,
        }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct vmm_virtio_blk_stats {
    pub reads: u64,
    pub writes: u64,
    pub flushes: u64,
    pub discards: u64,
    pub write_zeroes: u64,
    pub get_ids: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub errors: u64,
    pub throttled: u64,
}

c_enum! {
    pub enum vmm_net_backend {
        VMM_NET_TAP = 0,
        VMM_NET_CALLBACK = 1,
    }
}

pub type vmm_net_tx_fn = Option<unsafe extern "C" fn(ctx: *mut c_void, frame: *const c_void, len: usize)>;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vmm_virtio_net_opts {
    pub size: u32,
    pub backend: vmm_net_backend,
    pub mac: [u8; 6],
    pub tap_name: *const c_char,
    pub tap_fd: c_int,
    pub tx: vmm_net_tx_fn,
    pub ctx: *mut c_void,
    pub rx_backlog: u32,
}

impl Default for vmm_virtio_net_opts {
    /// VMM_VIRTIO_NET_OPTS_INIT
    fn default() -> Self {
        vmm_virtio_net_opts {
            size: core::mem::size_of::<Self>() as u32,
            backend: VMM_NET_TAP,
            mac: [0; 6],
            tap_name: core::ptr::null(),
            tap_fd: -1,
            tx: None,
            ctx: core::ptr::null_mut(),
            rx_backlog: 0,
        }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct vmm_virtio_net_stats {
    pub tx_frames: u64,
    pub tx_bytes: u64,
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_errors: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vmm_virtio_vsock_opts {
    pub size: u32,
    pub guest_cid: u64,
    pub uds_path: *const c_char,
    pub max_connections: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct vmm_virtio_rng_opts {
    pub size: u32,
    pub max_bytes_per_request: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct vmm_virtio_balloon_opts {
    pub size: u32,
    pub flags: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct vmm_virtio_balloon_stats {
    pub target_pages: u32,
    pub actual_pages: u32,
    pub inflated_pages: u64,
    pub deflated_pages: u64,
    pub guest_stats: [u64; 16],
    pub stats_updates: u64,
}

c_enum! {
    pub enum vmm_uart_backend {
        VMM_UART_FD = 0,
        VMM_UART_CALLBACK = 1,
    }
}

pub type vmm_uart_output_fn = Option<unsafe extern "C" fn(ctx: *mut c_void, data: *const c_void, len: usize)>;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vmm_uart_opts {
    pub size: u32,
    pub port: u16,
    pub gsi: u32,
    pub backend: vmm_uart_backend,
    pub in_fd: c_int,
    pub out_fd: c_int,
    pub loop_: *mut vmm_loop,
    pub output: vmm_uart_output_fn,
    pub ctx: *mut c_void,
    pub bus: *mut vmm_bus,
}

impl Default for vmm_uart_opts {
    /// VMM_UART_OPTS_INIT
    fn default() -> Self {
        vmm_uart_opts {
            size: core::mem::size_of::<Self>() as u32,
            port: 0,
            gsi: 0,
            backend: VMM_UART_FD,
            in_fd: -1,
            out_fd: -1,
            loop_: core::ptr::null_mut(),
            output: None,
            ctx: core::ptr::null_mut(),
            bus: core::ptr::null_mut(),
        }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vmm_i8042_opts {
    pub size: u32,
    pub gsi: u32,
    pub event: vmm_system_event_fn,
    pub ctx: *mut c_void,
    pub bus: *mut vmm_bus,
}

pub type vmm_rtc_clock_fn = Option<unsafe extern "C" fn(ctx: *mut c_void) -> i64>;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vmm_rtc_opts {
    pub size: u32,
    pub port: u16,
    pub clock: vmm_rtc_clock_fn,
    pub ctx: *mut c_void,
    pub bus: *mut vmm_bus,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vmm_power_opts {
    pub size: u32,
    pub port: u16,
    pub event: vmm_system_event_fn,
    pub ctx: *mut c_void,
    pub bus: *mut vmm_bus,
}

size_and_zeros_default!(vmm_virtio_vsock_opts, vmm_virtio_rng_opts, vmm_virtio_balloon_opts,
                        vmm_i8042_opts, vmm_rtc_opts, vmm_power_opts);

c_named!(vmm_virtio_console_opts, vmm_virtio_blk_opts, vmm_virtio_blk_stats, vmm_virtio_net_opts,
         vmm_virtio_net_stats, vmm_virtio_vsock_opts, vmm_virtio_rng_opts, vmm_virtio_balloon_opts,
         vmm_virtio_balloon_stats, vmm_uart_opts, vmm_i8042_opts, vmm_rtc_opts, vmm_power_opts);

layout!(struct vmm_virtio_console_opts init { size, backend, in_fd, out_fd, output, ctx, cols, rows });
layout!(struct vmm_virtio_blk_opts init { size, flags, path, fd, id, ops_per_sec, bytes_per_sec });
layout!(struct vmm_virtio_blk_stats { reads, writes, flushes, discards, write_zeroes, get_ids, bytes_read,
                                      bytes_written, errors, throttled });
layout!(struct vmm_virtio_net_opts init { size, backend, mac, tap_name, tap_fd, tx, ctx, rx_backlog });
layout!(struct vmm_virtio_net_stats { tx_frames, tx_bytes, rx_frames, rx_bytes, rx_dropped, tx_errors });
layout!(struct vmm_virtio_vsock_opts init { size, guest_cid, uds_path, max_connections });
layout!(struct vmm_virtio_rng_opts init { size, max_bytes_per_request });
layout!(struct vmm_virtio_balloon_opts init { size, flags });
layout!(struct vmm_virtio_balloon_stats { target_pages, actual_pages, inflated_pages, deflated_pages,
                                          guest_stats, stats_updates });
layout!(struct vmm_i8042_opts init { size, gsi, event, ctx, bus });
layout!(struct vmm_rtc_opts init { size, port, clock, ctx, bus });
layout!(struct vmm_power_opts init { size, port, event, ctx, bus });

layout!(struct vmm_uart_opts init { size, port, gsi, backend, in_fd, out_fd, loop_ = "loop", output, ctx, bus });

c_fns! {
    pub fn vmm_virtio_console_create(out: *mut *mut vmm_virtio_device, opts: *const vmm_virtio_console_opts) -> c_int;
    pub fn vmm_virtio_console_input(dev: *mut vmm_virtio_device, data: *const c_void, len: usize) -> c_long;
    pub fn vmm_virtio_console_pty_path(dev: *const vmm_virtio_device) -> *const c_char;

    pub fn vmm_virtio_blk_create(out: *mut *mut vmm_virtio_device, opts: *const vmm_virtio_blk_opts) -> c_int;
    pub fn vmm_virtio_blk_get_stats(dev: *mut vmm_virtio_device, out: *mut vmm_virtio_blk_stats) -> c_int;

    pub fn vmm_virtio_net_create(out: *mut *mut vmm_virtio_device, opts: *const vmm_virtio_net_opts) -> c_int;
    pub fn vmm_virtio_net_receive(dev: *mut vmm_virtio_device, frame: *const c_void, len: usize) -> c_int;
    pub fn vmm_virtio_net_get_stats(dev: *mut vmm_virtio_device, out: *mut vmm_virtio_net_stats) -> c_int;
    pub fn vmm_virtio_net_get_mac(dev: *mut vmm_virtio_device, mac: *mut u8) -> c_int;

    pub fn vmm_virtio_vsock_create(out: *mut *mut vmm_virtio_device, opts: *const vmm_virtio_vsock_opts) -> c_int;
    pub fn vmm_virtio_rng_create(out: *mut *mut vmm_virtio_device, opts: *const vmm_virtio_rng_opts) -> c_int;

    pub fn vmm_virtio_balloon_create(out: *mut *mut vmm_virtio_device, opts: *const vmm_virtio_balloon_opts) -> c_int;
    pub fn vmm_virtio_balloon_set_target(dev: *mut vmm_virtio_device, pages: u32) -> c_int;
    pub fn vmm_virtio_balloon_get_stats(dev: *mut vmm_virtio_device, out: *mut vmm_virtio_balloon_stats) -> c_int;

    pub fn vmm_uart_create(out: *mut *mut vmm_uart, vm: *mut vmm_vm, opts: *const vmm_uart_opts) -> c_int;
    pub fn vmm_uart_destroy(uart: *mut vmm_uart);
    pub fn vmm_uart_input(uart: *mut vmm_uart, data: *const c_void, len: usize) -> c_long;

    pub fn vmm_i8042_create(out: *mut *mut vmm_i8042, vm: *mut vmm_vm, opts: *const vmm_i8042_opts) -> c_int;
    pub fn vmm_i8042_destroy(kbc: *mut vmm_i8042);
    pub fn vmm_rtc_create(out: *mut *mut vmm_rtc, vm: *mut vmm_vm, opts: *const vmm_rtc_opts) -> c_int;
    pub fn vmm_rtc_destroy(rtc: *mut vmm_rtc);
    pub fn vmm_power_create(out: *mut *mut vmm_power, vm: *mut vmm_vm, opts: *const vmm_power_opts) -> c_int;
    pub fn vmm_power_destroy(power: *mut vmm_power);
}
