//! Virtio devices on the virtio-mmio transport: console (callback back end), rng.
use crate::error::{check, Result};
use crate::event_loop::Loop;
use crate::panic;
use crate::vm::{lock, Vm};
use libvmm_sys as sys;
use std::any::Any;
use std::ffi::CStr;
use std::marker::PhantomData;
use std::os::raw::{c_char, c_void};
use std::ptr::NonNull;
use std::sync::Mutex;

type Keep = Box<dyn Any + Send + Sync>;

/// A virtio device not attached yet. Dropping it destroys it.
pub struct VirtioDevice {
    raw: NonNull<sys::vmm_virtio_device>,
    /// Rust state the device's callbacks use (freed after the device).
    keep: Option<Keep>,
}

// SAFETY: an unattached device is plain data; the callbacks it holds are Send.
unsafe impl Send for VirtioDevice {}

struct ConsoleOutput {
    f: Mutex<Box<dyn FnMut(&[u8]) + Send>>,
}

unsafe extern "C" fn console_output(ctx: *mut c_void, data: *const c_void, len: usize) {
    // SAFETY: ctx is the ConsoleOutput kept alive with the device; data holds len bytes.
    let out = &*(ctx as *const ConsoleOutput);
    let bytes = if len == 0 { &[][..] } else { std::slice::from_raw_parts(data as *const u8, len) };
    panic::guard((), || {
        let mut f = lock(&out.f);
        (*f)(bytes)
    });
}

impl VirtioDevice {
    /// A virtio-console whose guest output goes to `output`, called on the loop thread.
    /// Input: `VirtioMmio::console_input`.
    pub fn console<F: FnMut(&[u8]) + Send + 'static>(output: F) -> Result<VirtioDevice> {
        let keep: Box<ConsoleOutput> = Box::new(ConsoleOutput { f: Mutex::new(Box::new(output)) });
        let mut o = sys::vmm_virtio_console_opts::default();
        o.backend = sys::VMM_CONSOLE_CALLBACK;
        o.output = Some(console_output);
        o.ctx = &*keep as *const ConsoleOutput as *mut c_void;
        let mut raw = std::ptr::null_mut();
        // SAFETY: o is valid; ctx lives as long as the device (kept below).
        check(unsafe { sys::vmm_virtio_console_create(&mut raw, &o) })?;
        Ok(VirtioDevice { raw: NonNull::new(raw).expect("NULL device"), keep: Some(keep) })
    }

    /// A virtio-rng (entropy from getrandom).
    pub fn rng() -> Result<VirtioDevice> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: NULL opts = defaults.
        check(unsafe { sys::vmm_virtio_rng_create(&mut raw, std::ptr::null()) })?;
        Ok(VirtioDevice { raw: NonNull::new(raw).expect("NULL device"), keep: None })
    }

    pub fn as_raw(&self) -> *mut sys::vmm_virtio_device {
        self.raw.as_ptr()
    }
}

impl Drop for VirtioDevice {
    fn drop(&mut self) {
        // SAFETY: never attached (attach consumes the VirtioDevice on success).
        unsafe { sys::vmm_virtio_device_destroy(self.raw.as_ptr()) }
    }
}

/// A device attached to a VM through virtio-mmio, with its doorbells on `lp`.
///
/// Status, error, statistics and console input may be used from any thread (`Send +
/// Sync`). Dropping it detaches and destroys the device; since that must not happen
/// while the loop dispatches, the drop pauses the loop for the moment it takes.
pub struct VirtioMmio<'a> {
    raw: NonNull<sys::vmm_virtio_mmio>,
    lp: &'a Loop,
    _vm: PhantomData<&'a Vm>,
    keep: Option<Keep>,
}

// SAFETY: see the type.
unsafe impl Send for VirtioMmio<'_> {}
unsafe impl Sync for VirtioMmio<'_> {}

/// Transport counters.
pub type MmioStats = sys::vmm_virtio_mmio_stats;

impl Vm {
    /// Attaches `dev` at MMIO `base` (4 KiB aligned) with interrupt line `gsi`.
    pub fn attach_virtio_mmio<'a>(&'a self, lp: &'a Loop, base: u64, gsi: u32, mut dev: VirtioDevice)
        -> Result<VirtioMmio<'a>> {
        let mut o = sys::vmm_virtio_mmio_opts::default();
        o.base = base;
        o.gsi = gsi;
        let mut raw = std::ptr::null_mut();
        let _paused = lp.pause();
        // SAFETY: all pointers valid; on failure dev stays ours (dropped below).
        check(unsafe { sys::vmm_virtio_mmio_attach(&mut raw, self.as_raw(), lp.as_raw(), &o, dev.as_raw()) })?;
        let keep = dev.keep.take();
        std::mem::forget(dev); // owned by the transport now
        Ok(VirtioMmio { raw: NonNull::new(raw).expect("NULL transport"), lp, _vm: PhantomData, keep })
    }
}

impl VirtioMmio<'_> {
    pub fn as_raw(&self) -> *mut sys::vmm_virtio_mmio {
        self.raw.as_ptr()
    }

    /// The device status register (VIRTIO_CONFIG_S_* bits; DRIVER_OK = 4).
    pub fn status(&self) -> u32 {
        // SAFETY: any thread.
        unsafe { sys::vmm_virtio_mmio_status(self.as_raw()) }
    }

    /// Why the device needs a reset (empty if it does not).
    pub fn error(&self) -> String {
        let mut buf = [0 as c_char; 256];
        // SAFETY: buf holds 256 bytes.
        unsafe { sys::vmm_virtio_mmio_error(self.as_raw(), buf.as_mut_ptr(), buf.len()) };
        unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
    }

    /// The Linux command-line fragment "virtio_mmio.device=4K@0x...:gsi".
    pub fn cmdline(&self) -> String {
        let mut buf = [0 as c_char; 128];
        // SAFETY: buf holds 128 bytes.
        unsafe { sys::vmm_virtio_mmio_cmdline(self.as_raw(), buf.as_mut_ptr(), buf.len()) };
        unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
    }

    pub fn stats(&self) -> MmioStats {
        let mut s = MmioStats::default();
        // SAFETY: any thread.
        unsafe { sys::vmm_virtio_mmio_get_stats(self.as_raw(), &mut s) };
        s
    }

    /// For a console: queues input for the guest (64 KiB buffer); returns the bytes
    /// accepted. -EINVAL for other devices.
    pub fn console_input(&self, data: &[u8]) -> Result<usize> {
        // SAFETY: any thread; the device lives as long as the transport.
        let r = unsafe {
            let dev = sys::vmm_virtio_mmio_device(self.as_raw());
            sys::vmm_virtio_console_input(dev, data.as_ptr() as *const c_void, data.len())
        };
        if r < 0 {
            return Err(crate::error::Error::last(r as i32));
        }
        Ok(r as usize)
    }

    /// The transport's and device's state as a blob (`vmm_virtio_mmio_save_state`).
    /// The loop is paused meanwhile; the VM's vCPUs must be stopped.
    pub fn save_state(&self) -> Result<Vec<u8>> {
        let _paused = self.lp.pause();
        let mut len = 0usize;
        // SAFETY: sizing call.
        check(unsafe { sys::vmm_virtio_mmio_save_state(self.as_raw(), std::ptr::null_mut(), 0, &mut len) })?;
        let mut v = vec![0u8; len];
        // SAFETY: v holds len bytes.
        check(unsafe { sys::vmm_virtio_mmio_save_state(self.as_raw(), v.as_mut_ptr() as *mut c_void, len, &mut len) })?;
        v.truncate(len);
        Ok(v)
    }

    /// Loads a blob from `save_state` (checked by the library). Loop paused; the VM's
    /// vCPUs must be stopped.
    pub fn load_state(&self, blob: &[u8]) -> Result<()> {
        let _paused = self.lp.pause();
        // SAFETY: blob is valid for the call.
        check(unsafe { sys::vmm_virtio_mmio_load_state(self.as_raw(), blob.as_ptr() as *const c_void, blob.len()) })
            .map(|_| ())
    }

    pub(crate) fn event_loop(&self) -> &Loop {
        self.lp
    }
}

impl Drop for VirtioMmio<'_> {
    fn drop(&mut self) {
        let _paused = self.lp.pause();
        // SAFETY: the loop does not dispatch; the bus stops calling the transport
        // before it is freed. The Rust state goes after the device.
        unsafe { sys::vmm_virtio_mmio_destroy(self.raw.as_ptr()) };
        drop(self.keep.take());
    }
}
