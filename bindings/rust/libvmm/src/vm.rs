//! The virtual machine: owns guest memory, the bus, the interrupt controller and vCPUs.
use crate::bus::{Bus, HandlerTable};
use crate::error::{check, errno, Error, Result};
use crate::irq::Irq;
use crate::memory::{Memory, Region};
use crate::vcpu::{Cpuid, Vcpu};
use libvmm_sys as sys;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::{Mutex, MutexGuard};

/// Interrupt-controller composition (`vmm_irqchip_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqChip {
    /// LAPIC, IOAPIC, PIC (and PIT) in the kernel.
    Kernel,
    /// LAPIC in the kernel, the IOAPIC in the library.
    Split,
    /// No interrupt controller (pure compute guests).
    None,
}

impl Default for IrqChip {
    fn default() -> Self {
        IrqChip::Kernel
    }
}

/// Options of `Vm::with_options` (`vmm_vm_opts`); `Default` is `VMM_VM_OPTS_INIT`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmOptions {
    pub irqchip: IrqChip,
    /// VMM_VM_NO_PIT: kernel irqchip without the in-kernel PIT.
    pub no_pit: bool,
    /// VMM_VM_EXIT_ON_UNHANDLED_IO: unclaimed port/MMIO accesses end `Vcpu::run` with
    /// `Exit::Io` instead of reading all-ones.
    pub exit_on_unhandled_io: bool,
    /// VMM_VM_DONTFORK: `fork()` children do not inherit guest RAM (host-side; restore
    /// and clone take it from their host options).
    pub dontfork: bool,
    /// Default "/dev/kvm".
    pub kvm_path: Option<PathBuf>,
    /// 0 = the default exit port 0xf4.
    pub exit_port: u16,
    /// 0 = the default fault port 0xf5.
    pub fault_port: u16,
    /// 0 = SIGRTMAX - 1.
    pub kick_signal: i32,
    /// Dirty-ring entries per vCPU (power of two 512..65536), 0 = dirty bitmap.
    pub dirty_ring_entries: u32,
}

pub(crate) fn path_cstring(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::new(errno::EINVAL, "path contains a NUL byte"))
}

impl VmOptions {
    /// The C struct; `kvm_path` must outlive its use.
    pub(crate) fn to_raw(&self, kvm_path: &Option<CString>) -> sys::vmm_vm_opts {
        let mut o = sys::vmm_vm_opts::default();
        o.irqchip = match self.irqchip {
            IrqChip::Kernel => sys::VMM_IRQCHIP_KERNEL,
            IrqChip::Split => sys::VMM_IRQCHIP_SPLIT,
            IrqChip::None => sys::VMM_IRQCHIP_NONE,
        };
        if self.no_pit {
            o.flags |= sys::VMM_VM_NO_PIT;
        }
        if self.exit_on_unhandled_io {
            o.flags |= sys::VMM_VM_EXIT_ON_UNHANDLED_IO;
        }
        if self.dontfork {
            o.flags |= sys::VMM_VM_DONTFORK;
        }
        o.kvm_path = kvm_path.as_ref().map(|c| c.as_ptr()).unwrap_or(std::ptr::null());
        o.exit_port = self.exit_port;
        o.fault_port = self.fault_port;
        o.kick_signal = self.kick_signal;
        o.dirty_ring_entries = self.dirty_ring_entries;
        o
    }

    pub(crate) fn kvm_path_c(&self) -> Result<Option<CString>> {
        self.kvm_path.as_deref().map(path_cstring).transpose()
    }
}

/// A virtual machine (`vmm_vm`). Dropping it destroys the VM with its memory, bus,
/// interrupt controller and vCPUs, then frees the Rust handlers registered on its bus.
///
/// Thread safety (vm.h): the accessors may be called from any thread, so `Vm` is `Send`
/// and `Sync`. Calls the C API forbids to race are serialized by the wrapper (vCPU
/// creation and snapshot operations share one lock) or need `&mut Vm` (changing the
/// memory map, which must not race with guest-memory access by devices or handlers).
pub struct Vm {
    raw: NonNull<sys::vmm_vm>,
    /// vCPUs for which a `Vcpu` handle exists (one handle per vCPU: a vCPU is driven by
    /// one thread at a time).
    claimed: Mutex<Vec<usize>>,
    /// Serializes vCPU creation with snapshot take/save/reset ("no vCPU changes
    /// meanwhile"; "one take, reset or clone at a time").
    ops: Mutex<()>,
    pub(crate) handlers: HandlerTable,
}

// SAFETY: vm.h documents its accessors as callable from any thread; the calls that must
// not race are serialized as described on the type.
unsafe impl Send for Vm {}
unsafe impl Sync for Vm {}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Vm {
    /// A VM with the default options (kernel irqchip, /dev/kvm).
    pub fn new() -> Result<Vm> {
        Vm::with_options(&VmOptions::default())
    }

    pub fn with_options(opts: &VmOptions) -> Result<Vm> {
        let path = opts.kvm_path_c()?;
        let o = opts.to_raw(&path);
        let mut raw = std::ptr::null_mut();
        // SAFETY: o and the path it points to are valid for the call.
        check(unsafe { sys::vmm_vm_create(&mut raw, &o) })?;
        // SAFETY: success returns a valid VM that we now own.
        Ok(unsafe { Vm::from_raw(raw) })
    }

    /// Takes ownership of a VM created by the C API (e.g. `vmm_snapshot_restore`).
    ///
    /// # Safety
    /// `raw` must be a valid VM that nothing else destroys.
    pub unsafe fn from_raw(raw: *mut sys::vmm_vm) -> Vm {
        Vm {
            raw: NonNull::new(raw).expect("vmm_vm pointer is NULL"),
            claimed: Mutex::new(Vec::new()),
            ops: Mutex::new(()),
            handlers: HandlerTable::default(),
        }
    }

    pub fn as_raw(&self) -> *mut sys::vmm_vm {
        self.raw.as_ptr()
    }

    pub(crate) fn ops_lock(&self) -> MutexGuard<'_, ()> {
        lock(&self.ops)
    }

    /// The guest memory map (read, write, translate, dirty tracking, ELF loading).
    pub fn memory(&self) -> Memory<'_> {
        // SAFETY: the VM is alive; its map lives as long as the VM.
        unsafe { Memory::from_raw(sys::vmm_vm_mem(self.as_raw())) }
    }

    /// Adds a memory region (a KVM memory slot). Needs `&mut self`: the memory map must
    /// not change while vCPUs, devices or other threads access guest memory.
    pub fn add_region(&mut self, region: &Region) -> Result<()> {
        // SAFETY: &mut self: no Vcpu, Memory view, device or handler access races.
        unsafe { region.add_to(sys::vmm_vm_mem(self.as_raw())) }
    }

    /// Adds `len` bytes of RAM (memfd backed) at `gpa`.
    pub fn add_ram(&mut self, gpa: u64, len: u64) -> Result<()> {
        self.add_region(&Region::new(gpa, len))
    }

    /// Removes the region that starts at `gpa`.
    pub fn remove_region(&mut self, gpa: u64) -> Result<()> {
        // SAFETY: as add_region.
        check(unsafe { sys::vmm_mem_remove_region(sys::vmm_vm_mem(self.as_raw()), gpa) }).map(|_| ())
    }

    /// The I/O bus (port I/O and MMIO handlers).
    pub fn bus(&self) -> Bus<'_> {
        // SAFETY: the VM's bus lives as long as the VM.
        unsafe { Bus::from_raw(sys::vmm_vm_bus(self.as_raw()), &self.handlers) }
    }

    /// The interrupt controller; None with `IrqChip::None`.
    pub fn irq(&self) -> Option<Irq<'_>> {
        // SAFETY: the VM is alive.
        let irq = unsafe { sys::vmm_vm_irq(self.as_raw()) };
        NonNull::new(irq).map(|p| unsafe { Irq::from_raw(p) })
    }

    /// The effective exit port (a guest write there ends `run` with `Exit::Guest`).
    pub fn exit_port(&self) -> u16 {
        // SAFETY: the VM is alive.
        unsafe { sys::vmm_vm_exit_port(self.as_raw()) }
    }

    pub fn fault_port(&self) -> u16 {
        // SAFETY: the VM is alive.
        unsafe { sys::vmm_vm_fault_port(self.as_raw()) }
    }

    /// Records system event `event` (VMM_SYSTEM_EVENT_*) and kicks every vCPU.
    pub fn request_stop(&self, event: u32) {
        // SAFETY: any thread.
        unsafe { sys::vmm_vm_request_stop(self.as_raw(), event) }
    }

    pub fn stop_requested(&self) -> u32 {
        // SAFETY: any thread.
        unsafe { sys::vmm_vm_stop_requested(self.as_raw()) }
    }

    pub fn clear_stop(&self) {
        // SAFETY: any thread.
        unsafe { sys::vmm_vm_clear_stop(self.as_raw()) }
    }

    pub fn vcpu_count(&self) -> usize {
        // SAFETY: any thread.
        unsafe { sys::vmm_vm_vcpu_count(self.as_raw()) }
    }

    /// Creates vCPU `id` with the default CPUID table.
    pub fn create_vcpu(&self, id: u32) -> Result<Vcpu<'_>> {
        self.create_vcpu_with(id, None)
    }

    /// Creates vCPU `id` with the given CPUID table (copied) or the default.
    pub fn create_vcpu_with(&self, id: u32, cpuid: Option<&Cpuid>) -> Result<Vcpu<'_>> {
        let mut o = sys::vmm_vcpu_opts::default();
        o.id = id;
        o.cpuid = cpuid.map(|c| c.as_raw() as *const _).unwrap_or(std::ptr::null());
        let mut raw = std::ptr::null_mut();
        {
            let _g = self.ops_lock();
            // SAFETY: o is valid; vCPU creation is serialized with snapshot operations.
            check(unsafe { sys::vmm_vcpu_create(&mut raw, self.as_raw(), &o) })?;
        }
        self.claim(raw)
    }

    /// A handle on the i-th existing vCPU (e.g. of a restored or cloned VM). Only one
    /// handle per vCPU may exist at a time: -EBUSY if it is already held.
    pub fn vcpu(&self, i: usize) -> Result<Vcpu<'_>> {
        // SAFETY: any thread.
        let raw = unsafe { sys::vmm_vm_get_vcpu(self.as_raw(), i) };
        if raw.is_null() {
            return Err(Error::new(errno::ENOENT, format!("the VM has no vCPU {}", i)));
        }
        self.claim(raw)
    }

    fn claim(&self, raw: *mut sys::vmm_vcpu) -> Result<Vcpu<'_>> {
        let mut c = lock(&self.claimed);
        if c.contains(&(raw as usize)) {
            return Err(Error::new(errno::EBUSY, "a Vcpu handle on this vCPU exists already"));
        }
        c.push(raw as usize);
        // SAFETY: the vCPU belongs to this VM and lives until the VM is destroyed (the
        // safe API never destroys single vCPUs); the claim makes this the only handle.
        Ok(unsafe { Vcpu::from_raw(raw, self) })
    }

    pub(crate) fn release(&self, raw: *mut sys::vmm_vcpu) {
        lock(&self.claimed).retain(|&p| p != raw as usize);
    }

    /// Loads an ELF guest program from a file into guest memory.
    pub fn load_elf_file(&self, path: impl AsRef<Path>) -> Result<crate::memory::ElfInfo> {
        self.memory().load_elf_file(path)
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        // SAFETY: we own the VM; no Vcpu, Memory, Bus or device borrows it any more.
        // Handlers are freed after the bus that calls them is gone.
        unsafe { sys::vmm_vm_destroy(self.raw.as_ptr()) };
    }
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm").field("raw", &self.raw).field("vcpus", &self.vcpu_count()).finish()
    }
}
