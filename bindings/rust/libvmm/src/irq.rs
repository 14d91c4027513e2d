//! The interrupt controller (irq.h): lines, MSIs, routes, irqfds.
use crate::error::{check, Result};
use libvmm_sys as sys;
use std::marker::PhantomData;
use std::os::unix::io::RawFd;
use std::ptr::NonNull;

/// The VM's interrupt controller. irq.h: every function is thread-safe, so `Irq` is
/// `Send`, `Sync` and `Copy`.
#[derive(Clone, Copy)]
pub struct Irq<'a> {
    raw: NonNull<sys::vmm_irq>,
    _vm: PhantomData<&'a ()>,
}

// SAFETY: irq.h documents every function as thread-safe.
unsafe impl Send for Irq<'_> {}
unsafe impl Sync for Irq<'_> {}

impl<'a> Irq<'a> {
    /// # Safety
    /// `raw` must stay valid for 'a.
    pub unsafe fn from_raw(raw: NonNull<sys::vmm_irq>) -> Irq<'a> {
        Irq { raw, _vm: PhantomData }
    }

    pub fn as_raw(&self) -> *mut sys::vmm_irq {
        self.raw.as_ptr()
    }

    pub fn set_line(&self, gsi: u32, level: bool) -> Result<()> {
        // SAFETY: thread-safe call on a live controller.
        check(unsafe { sys::vmm_irq_set_line(self.as_raw(), gsi, level) }).map(|_| ())
    }

    pub fn pulse(&self, gsi: u32) -> Result<()> {
        // SAFETY: as above.
        check(unsafe { sys::vmm_irq_pulse(self.as_raw(), gsi) }).map(|_| ())
    }

    pub fn msi(&self, address: u64, data: u32) -> Result<()> {
        // SAFETY: as above.
        check(unsafe { sys::vmm_irq_msi(self.as_raw(), address, data) }).map(|_| ())
    }

    pub fn route_msi(&self, gsi: u32, address: u64, data: u32) -> Result<()> {
        // SAFETY: as above.
        check(unsafe { sys::vmm_irq_route_msi(self.as_raw(), gsi, address, data) }).map(|_| ())
    }

    pub fn unroute(&self, gsi: u32) -> Result<()> {
        // SAFETY: as above.
        check(unsafe { sys::vmm_irq_unroute(self.as_raw(), gsi) }).map(|_| ())
    }

    /// The fd stays the caller's; keep it open until removed or the VM is gone.
    pub fn add_irqfd(&self, fd: RawFd, gsi: u32, resample_fd: Option<RawFd>) -> Result<()> {
        // SAFETY: as above.
        check(unsafe { sys::vmm_irq_add_irqfd(self.as_raw(), fd, gsi, resample_fd.unwrap_or(-1)) }).map(|_| ())
    }

    pub fn remove_irqfd(&self, fd: RawFd, gsi: u32) -> Result<()> {
        // SAFETY: as above.
        check(unsafe { sys::vmm_irq_remove_irqfd(self.as_raw(), fd, gsi) }).map(|_| ())
    }
}

/// The MSI (address, data) that delivers `vector` to APIC `apic_id` (fixed, edge).
pub fn msi_for(apic_id: u32, vector: u8) -> (u64, u32) {
    let (mut a, mut d) = (0u64, 0u32);
    // SAFETY: valid out pointers.
    unsafe { sys::vmm_irq_msi_for(apic_id, vector, &mut a, &mut d) };
    (a, d)
}
