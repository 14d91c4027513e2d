//! The I/O bus: port I/O and MMIO ranges handled by Rust closures.
use crate::error::{check, errno, Error, Result};
use crate::panic;
use crate::vm::lock;
use libvmm_sys as sys;
use std::any::Any;
use std::collections::HashMap;
use std::os::raw::{c_uint, c_void};
use std::ptr::NonNull;
use std::sync::Mutex;

/// An address space of the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Space {
    /// 16-bit port I/O.
    Pio,
    /// Guest-physical addresses not backed by RAM.
    Mmio,
}

impl Space {
    fn raw(self) -> sys::vmm_bus_space {
        match self {
            Space::Pio => sys::VMM_BUS_PIO,
            Space::Mmio => sys::VMM_BUS_MMIO,
        }
    }
}

/// A device on the bus. Callbacks run on the thread of the vCPU that exited, possibly
/// on several vCPU threads at once (bus.h), hence `Send + Sync`; `offset + size` never
/// exceeds the range. A panic in a callback is caught at the FFI boundary, the vCPU is
/// kicked, and the panic resumes from `Vcpu::run` (a read then returns all-ones).
pub trait BusHandler: Send + Sync + 'static {
    /// A `size`-byte read (1, 2, 4 or 8) at `offset`; only the low `size` bytes count.
    fn read(&self, offset: u64, size: u32) -> u64 {
        let _ = (offset, size);
        u64::MAX
    }
    /// A `size`-byte write of `value` at `offset`.
    fn write(&self, offset: u64, size: u32, value: u64) {
        let _ = (offset, size, value);
    }
}

/// A handler made of two closures (see `Bus::register_fn`).
pub struct FnHandler<R, W> {
    read: R,
    write: W,
}

impl<R, W> BusHandler for FnHandler<R, W>
where
    R: Fn(u64, u32) -> u64 + Send + Sync + 'static,
    W: Fn(u64, u32, u64) + Send + Sync + 'static,
{
    fn read(&self, offset: u64, size: u32) -> u64 {
        (self.read)(offset, size)
    }
    fn write(&self, offset: u64, size: u32, value: u64) {
        (self.write)(offset, size, value)
    }
}

unsafe extern "C" fn read_trampoline<H: BusHandler>(opaque: *mut c_void, offset: u64, size: c_uint) -> u64 {
    // SAFETY: opaque is the Box<H> registered with this range; it is freed only after
    // vmm_bus_unregister returned (no callback running) or the bus is destroyed.
    let h = &*(opaque as *const H);
    panic::guard(u64::MAX, || h.read(offset, size))
}

unsafe extern "C" fn write_trampoline<H: BusHandler>(opaque: *mut c_void, offset: u64, size: c_uint, value: u64) {
    // SAFETY: as read_trampoline.
    let h = &*(opaque as *const H);
    panic::guard((), || h.write(offset, size, value))
}

/// The Rust handlers of one bus, freed when unregistered or when the bus's owner is
/// dropped (after the C bus is gone). One lock per space, held across the C call that
/// registers or unregisters a range, so the table always matches what the C bus holds
/// (a callback may change the other space, as bus.h allows).
#[derive(Default)]
pub(crate) struct HandlerTable {
    pio: Mutex<HashMap<u64, Box<dyn Any + Send + Sync>>>,
    mmio: Mutex<HashMap<u64, Box<dyn Any + Send + Sync>>>,
}

impl HandlerTable {
    fn space(&self, space: Space) -> &Mutex<HashMap<u64, Box<dyn Any + Send + Sync>>> {
        match space {
            Space::Pio => &self.pio,
            Space::Mmio => &self.mmio,
        }
    }
}

/// A bus: a VM's (`Vm::bus`) or a standalone one (`StandaloneBus`).
/// Registering and dispatching are thread-safe (bus.h): `Send + Sync`.
#[derive(Clone, Copy)]
pub struct Bus<'a> {
    raw: NonNull<sys::vmm_bus>,
    handlers: &'a HandlerTable,
}

// SAFETY: bus.h: registering and unregistering are thread-safe against dispatch, and
// dispatch may run on any thread; the handler table has its own lock.
unsafe impl Send for Bus<'_> {}
unsafe impl Sync for Bus<'_> {}

impl<'a> Bus<'a> {
    /// # Safety
    /// `raw` must be valid for 'a and `handlers` must be freed only after it.
    pub(crate) unsafe fn from_raw(raw: *mut sys::vmm_bus, handlers: &'a HandlerTable) -> Bus<'a> {
        Bus { raw: NonNull::new(raw).expect("vmm_bus pointer is NULL"), handlers }
    }

    pub fn as_raw(&self) -> *mut sys::vmm_bus {
        self.raw.as_ptr()
    }

    /// Registers `handler` for [base, base+len) in `space`. The handler lives until
    /// `unregister(space, base)` or until the bus's VM is dropped.
    pub fn register<H: BusHandler>(&self, space: Space, base: u64, len: u64, handler: H) -> Result<()> {
        let boxed: Box<H> = Box::new(handler);
        let opaque = &*boxed as *const H as *mut c_void;
        let ops = sys::vmm_bus_ops { read: Some(read_trampoline::<H>), write: Some(write_trampoline::<H>) };
        let mut table = lock(self.handlers.space(space));
        // SAFETY: ops is copied by the library; opaque stays valid until the entry is
        // removed from the table (after unregistering) or the table is dropped (after
        // the bus is destroyed).
        check(unsafe { sys::vmm_bus_register(self.as_raw(), space.raw(), base, len, &ops, opaque) })?;
        // The C bus had no range at `base` (it would have refused), so no entry is
        // replaced here while C still uses it.
        table.insert(base, boxed);
        Ok(())
    }

    /// Registers closures for reads and writes.
    pub fn register_fn<R, W>(&self, space: Space, base: u64, len: u64, read: R, write: W) -> Result<()>
    where
        R: Fn(u64, u32) -> u64 + Send + Sync + 'static,
        W: Fn(u64, u32, u64) + Send + Sync + 'static,
    {
        self.register(space, base, len, FnHandler { read, write })
    }

    /// Registers a write-only range (reads return all-ones).
    pub fn on_write<W>(&self, space: Space, base: u64, len: u64, write: W) -> Result<()>
    where
        W: Fn(u64, u32, u64) + Send + Sync + 'static,
    {
        self.register_fn(space, base, len, |_, _| u64::MAX, write)
    }

    /// Unregisters the range starting at `base` and frees its handler. Don't call it
    /// (or `register`) from inside a callback of the same space: the C bus answers
    /// -EDEADLK, but only if no other thread is registering in that space meanwhile.
    pub fn unregister(&self, space: Space, base: u64) -> Result<()> {
        let mut table = lock(self.handlers.space(space));
        // SAFETY: plain call; when it returns, no callback of that range runs.
        check(unsafe { sys::vmm_bus_unregister(self.as_raw(), space.raw(), base) })?;
        let old = table.remove(&base);
        drop(table);
        drop(old);
        Ok(())
    }

    /// Dispatches a read as a vCPU exit would. Err(ENOENT) if no device claimed it.
    pub fn read(&self, space: Space, addr: u64, size: u32) -> Result<u64> {
        let mut data = [0xffu8; 8];
        if !matches!(size, 1 | 2 | 4 | 8) {
            return Err(Error::new(errno::EINVAL, format!("bus read of {} bytes", size)));
        }
        // SAFETY: data holds 8 >= size bytes.
        let r = unsafe { sys::vmm_bus_read(self.as_raw(), space.raw(), addr, data.as_mut_ptr() as *mut c_void, size) };
        panic::resume();
        if r == -errno::ENOENT {
            return Err(Error::new(errno::ENOENT, format!("no device at {:#x}", addr)));
        }
        check(r)?;
        Ok(u64::from_le_bytes(data) & (u64::MAX >> (64 - 8 * size)))
    }

    /// Dispatches a write as a vCPU exit would. Err(ENOENT) if no device claimed it.
    pub fn write(&self, space: Space, addr: u64, size: u32, value: u64) -> Result<()> {
        if !matches!(size, 1 | 2 | 4 | 8) {
            return Err(Error::new(errno::EINVAL, format!("bus write of {} bytes", size)));
        }
        let data = value.to_le_bytes();
        // SAFETY: data holds 8 >= size bytes.
        let r = unsafe { sys::vmm_bus_write(self.as_raw(), space.raw(), addr, data.as_ptr() as *const c_void, size) };
        panic::resume();
        if r == -errno::ENOENT {
            return Err(Error::new(errno::ENOENT, format!("no device at {:#x}", addr)));
        }
        check(r).map(|_| ())
    }
}

/// A bus without a VM (`vmm_bus_create`), for tests and tools.
pub struct StandaloneBus {
    raw: NonNull<sys::vmm_bus>,
    handlers: HandlerTable,
}

// SAFETY: as Bus.
unsafe impl Send for StandaloneBus {}
unsafe impl Sync for StandaloneBus {}

impl StandaloneBus {
    pub fn new() -> Result<StandaloneBus> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: valid out pointer.
        check(unsafe { sys::vmm_bus_create(&mut raw) })?;
        Ok(StandaloneBus { raw: NonNull::new(raw).expect("NULL bus"), handlers: HandlerTable::default() })
    }

    pub fn bus(&self) -> Bus<'_> {
        // SAFETY: the bus lives as long as self; handlers are dropped after it.
        unsafe { Bus::from_raw(self.raw.as_ptr(), &self.handlers) }
    }
}

impl Drop for StandaloneBus {
    fn drop(&mut self) {
        // SAFETY: we own the bus; the handlers field is dropped after this.
        unsafe { sys::vmm_bus_destroy(self.raw.as_ptr()) }
    }
}
