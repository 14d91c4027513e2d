//! Virtual CPUs: registers, long-mode setup, running, exits; CPUID tables.
use crate::error::{check, errno, Error, Result};
use crate::panic::{self, Interrupt};
use crate::vm::Vm;
use libvmm_sys as sys;
use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::os::raw::c_void;
use std::ptr::NonNull;

pub use sys::vmm_cpuid_entry as CpuidEntry;
pub use sys::vmm_dtable as DTable;
pub use sys::vmm_fpu as Fpu;
pub use sys::vmm_regs as Regs;
pub use sys::vmm_segment as Segment;
pub use sys::vmm_sregs as Sregs;

/// An exception that reached the fault-reporting IDT (`VMM_EXIT_FAULT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub vector: u32,
    pub error_code: Option<u64>,
    pub rip: u64,
    /// Page-fault address (vector 14).
    pub cr2: u64,
    /// CS of the faulting code: CPL = cs & 3.
    pub cs: u64,
}

/// An unclaimed port or MMIO access (`VMM_EXIT_IO`, with `exit_on_unhandled_io`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Io {
    pub addr: u64,
    pub size: u32,
    pub is_write: bool,
    pub is_mmio: bool,
    /// The written value.
    pub value: u64,
}

/// Why `Vcpu::run` returned (`vmm_exit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// HLT with nothing pending.
    Hlt,
    /// Triple fault or shutdown.
    Shutdown,
    /// The guest wrote this code to the exit port.
    Guest(u64),
    Fault(Fault),
    /// `Kicker::kick` was called.
    Kick,
    Io(Io),
    /// A system event (VMM_SYSTEM_EVENT_*, or KVM's).
    SystemEvent(u32),
    /// An emulation failure the library cannot complete (returned inside the `Error`
    /// of `run`, errno EIO).
    InternalError { rip: u64, suberror: u32, insn: [u8; 16], insn_len: u32 },
    /// A reason this version of the bindings does not know.
    Unknown(u32),
}

impl Exit {
    fn from_raw(e: &sys::vmm_exit) -> Exit {
        // SAFETY: the union member read is the one `reason` selects.
        unsafe {
            match e.reason {
                sys::VMM_EXIT_HLT => Exit::Hlt,
                sys::VMM_EXIT_SHUTDOWN => Exit::Shutdown,
                sys::VMM_EXIT_GUEST => Exit::Guest(e.u.guest.code),
                sys::VMM_EXIT_FAULT => {
                    let f = e.u.fault;
                    Exit::Fault(Fault {
                        vector: f.vector,
                        error_code: if f.has_error_code != 0 { Some(f.error_code) } else { None },
                        rip: f.rip,
                        cr2: f.cr2,
                        cs: f.cs,
                    })
                }
                sys::VMM_EXIT_KICK => Exit::Kick,
                sys::VMM_EXIT_IO => {
                    let i = e.u.io;
                    Exit::Io(Io {
                        addr: i.addr,
                        size: i.size,
                        is_write: i.is_write != 0,
                        is_mmio: i.is_mmio != 0,
                        value: i.value,
                    })
                }
                sys::VMM_EXIT_SYSTEM_EVENT => Exit::SystemEvent(e.u.system.type_),
                sys::VMM_EXIT_INTERNAL_ERROR => {
                    let i = e.u.internal;
                    Exit::InternalError { rip: i.rip, suberror: i.suberror, insn: i.insn, insn_len: i.insn_len }
                }
                other => Exit::Unknown(other.0),
            }
        }
    }
}

/// Options of `Vcpu::setup_long_mode` (`vmm_long_mode_opts`); `Default` is
/// `VMM_LONG_MODE_OPTS_INIT` (CPL 0, fault-reporting IDT, system area at GPA 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongMode {
    /// 0 or 3 (at 3: IOPL 3, so port I/O needs no ring-0 code).
    pub cpl: u32,
    pub entry: u64,
    pub stack: u64,
    /// 0 = the system area's own ring-0 stack.
    pub kernel_stack: u64,
    /// Guest-physical base of the 128 KiB system area (overwritten).
    pub system_area: u64,
    /// Bytes identity-mapped; 0 = 4 GiB.
    pub identity_map: u64,
    /// Install the IDT that reports exceptions as `Exit::Fault`.
    pub fault_idt: bool,
}

impl Default for LongMode {
    fn default() -> Self {
        LongMode { cpl: 0, entry: 0, stack: 0, kernel_stack: 0, system_area: 0, identity_map: 0, fault_idt: true }
    }
}

/// Makes a vCPU's `run` return `Exit::Kick` soon; usable from any thread while the VM
/// lives (`vmm_vcpu_kick` is documented for any thread, any time).
#[derive(Clone, Copy)]
pub struct Kicker<'vm> {
    raw: NonNull<sys::vmm_vcpu>,
    _vm: PhantomData<&'vm Vm>,
}

// SAFETY: vmm_vcpu_kick may be called from any thread; the vCPU lives as long as the VM.
unsafe impl Send for Kicker<'_> {}
unsafe impl Sync for Kicker<'_> {}

impl Kicker<'_> {
    pub fn kick(&self) {
        // SAFETY: see the type.
        unsafe { sys::vmm_vcpu_kick(self.raw.as_ptr()) }
    }
}

/// The handle that drives one vCPU of a VM. vcpu.h: a vCPU is driven by one thread at a
/// time, so `Vcpu` is `Send` (move it to the thread that runs it, e.g. with
/// `std::thread::scope`) but not `Sync`; `Kicker` is the part any thread may use. At
/// most one handle per vCPU exists; dropping it releases the vCPU (which lives until
/// the VM is dropped) so `Vm::vcpu(i)` can hand it out again.
pub struct Vcpu<'vm> {
    raw: NonNull<sys::vmm_vcpu>,
    vm: &'vm Vm,
}

// SAFETY: see the type; &Vm is Send because Vm is Sync.
unsafe impl Send for Vcpu<'_> {}

impl<'vm> Vcpu<'vm> {
    /// # Safety
    /// `raw` must be a vCPU of `vm` with no other handle.
    pub(crate) unsafe fn from_raw(raw: *mut sys::vmm_vcpu, vm: &'vm Vm) -> Vcpu<'vm> {
        Vcpu { raw: NonNull::new(raw).expect("NULL vCPU"), vm }
    }

    pub fn as_raw(&self) -> *mut sys::vmm_vcpu {
        self.raw.as_ptr()
    }

    pub fn vm(&self) -> &'vm Vm {
        self.vm
    }

    pub fn id(&self) -> u32 {
        // SAFETY: the vCPU is alive.
        unsafe { sys::vmm_vcpu_id(self.as_raw()) }
    }

    pub fn kicker(&self) -> Kicker<'vm> {
        Kicker { raw: self.raw, _vm: PhantomData }
    }

    pub fn regs(&mut self) -> Result<Regs> {
        let mut r = Regs::default();
        // SAFETY: valid out pointer; this thread drives the vCPU.
        check(unsafe { sys::vmm_vcpu_get_regs(self.as_raw(), &mut r) })?;
        Ok(r)
    }

    pub fn set_regs(&mut self, regs: &Regs) -> Result<()> {
        // SAFETY: as regs().
        check(unsafe { sys::vmm_vcpu_set_regs(self.as_raw(), regs) }).map(|_| ())
    }

    pub fn sregs(&mut self) -> Result<Sregs> {
        let mut r = Sregs::default();
        // SAFETY: as regs().
        check(unsafe { sys::vmm_vcpu_get_sregs(self.as_raw(), &mut r) })?;
        Ok(r)
    }

    pub fn set_sregs(&mut self, sregs: &Sregs) -> Result<()> {
        // SAFETY: as regs().
        check(unsafe { sys::vmm_vcpu_set_sregs(self.as_raw(), sregs) }).map(|_| ())
    }

    pub fn fpu(&mut self) -> Result<Fpu> {
        let mut f = Fpu::default();
        // SAFETY: as regs().
        check(unsafe { sys::vmm_vcpu_get_fpu(self.as_raw(), &mut f) })?;
        Ok(f)
    }

    pub fn set_fpu(&mut self, fpu: &Fpu) -> Result<()> {
        // SAFETY: as regs().
        check(unsafe { sys::vmm_vcpu_set_fpu(self.as_raw(), fpu) }).map(|_| ())
    }

    /// Reads the MSRs `idx` (at most 256).
    pub fn msrs(&mut self, idx: &[u32]) -> Result<Vec<u64>> {
        let mut v = vec![0u64; idx.len()];
        // SAFETY: both arrays hold idx.len() entries.
        check(unsafe { sys::vmm_vcpu_get_msrs(self.as_raw(), idx.as_ptr(), v.as_mut_ptr(), idx.len()) })?;
        Ok(v)
    }

    /// Writes MSRs idx[i] = val[i].
    pub fn set_msrs(&mut self, idx: &[u32], val: &[u64]) -> Result<()> {
        if idx.len() != val.len() {
            return Err(Error::new(errno::EINVAL, "set_msrs: idx and val differ in length"));
        }
        // SAFETY: both arrays hold idx.len() entries.
        check(unsafe { sys::vmm_vcpu_set_msrs(self.as_raw(), idx.as_ptr(), val.as_ptr(), idx.len()) }).map(|_| ())
    }

    pub fn set_cpuid(&mut self, cpuid: &Cpuid) -> Result<()> {
        // SAFETY: the table is copied.
        check(unsafe { sys::vmm_vcpu_set_cpuid(self.as_raw(), cpuid.as_raw()) }).map(|_| ())
    }

    /// Guest virtual to guest physical through the vCPU's current paging mode.
    pub fn translate(&mut self, gva: u64) -> Result<u64> {
        let mut gpa = 0;
        // SAFETY: valid out pointer.
        check(unsafe { sys::vmm_vcpu_translate(self.as_raw(), gva, &mut gpa) })?;
        Ok(gpa)
    }

    /// Puts the vCPU straight into 64-bit mode (writes the system area into guest RAM).
    pub fn setup_long_mode(&mut self, lm: &LongMode) -> Result<()> {
        let mut o = sys::vmm_long_mode_opts::default();
        o.flags = if lm.fault_idt { sys::VMM_LONG_MODE_FAULT_IDT } else { 0 };
        o.cpl = lm.cpl;
        o.entry = lm.entry;
        o.stack = lm.stack;
        o.kernel_stack = lm.kernel_stack;
        o.system_area = lm.system_area;
        o.identity_map = lm.identity_map;
        // SAFETY: o is valid for the call.
        check(unsafe { sys::vmm_vcpu_setup_long_mode(self.as_raw(), &o) }).map(|_| ())
    }

    pub fn set_idt_gate(&mut self, vector: u8, handler: u64, dpl: u32) -> Result<()> {
        // SAFETY: plain call.
        check(unsafe { sys::vmm_vcpu_set_idt_gate(self.as_raw(), vector, handler, dpl) }).map(|_| ())
    }

    /// Runs the guest until an exit the caller must see. Port I/O and MMIO go to the
    /// bus handlers on this thread; a panic in one of them kicks the vCPU and resumes
    /// here. An emulation failure the library cannot complete is `Err` with errno EIO,
    /// the details in the message and `Error::exit()`.
    pub fn run(&mut self) -> Result<Exit> {
        let mut exit = sys::vmm_exit::default();
        let r = {
            let _scope = panic::Scope::enter(Interrupt::Vcpu(self.as_raw()));
            // SAFETY: exit is a valid out pointer; this thread drives the vCPU.
            unsafe { sys::vmm_vcpu_run(self.as_raw(), &mut exit) }
        };
        panic::resume();
        if r < 0 {
            let e = Error::last(r);
            if exit.reason == sys::VMM_EXIT_INTERNAL_ERROR {
                return Err(e.with_exit(Exit::from_raw(&exit)));
            }
            return Err(e);
        }
        Ok(Exit::from_raw(&exit))
    }
}

impl Drop for Vcpu<'_> {
    fn drop(&mut self) {
        self.vm.release(self.raw.as_ptr());
    }
}

/// A CPUID table (`vmm_cpuid`). Not synchronised (cpuid.h): `Send`, not `Sync`.
pub struct Cpuid {
    raw: NonNull<sys::vmm_cpuid>,
}

// SAFETY: the table is plain data owned by this handle.
unsafe impl Send for Cpuid {}

impl Cpuid {
    /// An empty table.
    pub fn new() -> Result<Cpuid> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: valid out pointer.
        check(unsafe { sys::vmm_cpuid_create(&mut raw) })?;
        Ok(Cpuid { raw: NonNull::new(raw).expect("NULL cpuid") })
    }

    /// What KVM supports for vCPU `vcpu_id`, with libvmm's defaults.
    pub fn default_for(vm: &Vm, vcpu_id: u32) -> Result<Cpuid> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: valid out pointer; the VM is alive.
        check(unsafe { sys::vmm_cpuid_create_default(&mut raw, vm.as_raw(), vcpu_id) })?;
        Ok(Cpuid { raw: NonNull::new(raw).expect("NULL cpuid") })
    }

    pub fn as_raw(&self) -> *mut sys::vmm_cpuid {
        self.raw.as_ptr()
    }

    pub fn try_clone(&self) -> Result<Cpuid> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: valid pointers.
        check(unsafe { sys::vmm_cpuid_clone(&mut raw, self.as_raw()) })?;
        Ok(Cpuid { raw: NonNull::new(raw).expect("NULL cpuid") })
    }

    pub fn len(&self) -> usize {
        // SAFETY: the table is alive.
        unsafe { sys::vmm_cpuid_count(self.as_raw()) }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn entries(&self) -> Vec<CpuidEntry> {
        (0..self.len())
            .filter_map(|i| {
                let mut e = CpuidEntry::default();
                // SAFETY: valid out pointer.
                (unsafe { sys::vmm_cpuid_entry_at(self.as_raw(), i, &mut e) } == 0).then(|| e)
            })
            .collect()
    }

    pub fn get(&self, function: u32, index: u32) -> Option<CpuidEntry> {
        let mut e = CpuidEntry::default();
        // SAFETY: valid out pointer.
        (unsafe { sys::vmm_cpuid_get(self.as_raw(), function, index, &mut e) } == 0).then(|| e)
    }

    pub fn set(&mut self, entry: &CpuidEntry) -> Result<()> {
        // SAFETY: valid pointer.
        check(unsafe { sys::vmm_cpuid_set(self.as_raw(), entry) }).map(|_| ())
    }

    pub fn remove(&mut self, function: u32, index: u32) -> Result<()> {
        // SAFETY: plain call.
        check(unsafe { sys::vmm_cpuid_remove(self.as_raw(), function, index) }).map(|_| ())
    }

    /// Hides a feature by its /proc/cpuinfo name (and what depends on it).
    pub fn hide_feature(&mut self, name: &str) -> Result<()> {
        let c = CString::new(name).map_err(|_| Error::new(errno::EINVAL, "name contains NUL"))?;
        // SAFETY: c is valid for the call.
        check(unsafe { sys::vmm_cpuid_hide_feature(self.as_raw(), c.as_ptr()) }).map(|_| ())
    }

    /// The names `hide_feature` knows.
    pub fn feature_names() -> Vec<String> {
        let mut v = Vec::new();
        for i in 0.. {
            // SAFETY: returns a static string or NULL past the end.
            let p = unsafe { sys::vmm_cpuid_feature_name(i) };
            if p.is_null() {
                break;
            }
            v.push(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned());
        }
        v
    }

    /// Calls `f` on every entry; `f` may change the registers.
    pub fn filter<F: FnMut(&mut CpuidEntry)>(&mut self, mut f: F) {
        unsafe extern "C" fn tramp<F: FnMut(&mut CpuidEntry)>(ctx: *mut c_void, e: *mut CpuidEntry) -> i32 {
            // SAFETY: ctx is the &mut F below; e is a valid entry during the call.
            let f = &mut *(ctx as *mut F);
            panic::guard(1, || {
                f(&mut *e);
                0
            })
        }
        // SAFETY: f outlives the call.
        unsafe { sys::vmm_cpuid_filter(self.as_raw(), Some(tramp::<F>), &mut f as *mut F as *mut c_void) };
        panic::resume();
    }
}

impl Drop for Cpuid {
    fn drop(&mut self) {
        // SAFETY: we own the table.
        unsafe { sys::vmm_cpuid_destroy(self.raw.as_ptr()) }
    }
}
