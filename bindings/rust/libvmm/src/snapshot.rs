//! Snapshots: save a stopped VM to files and restore it; in-memory take, clone, reset.
use crate::error::{check, errno, Error, Result};
use crate::virtio::VirtioMmio;
use crate::vm::{path_cstring, Vm, VmOptions};
use libvmm_sys as sys;
use std::os::raw::c_void;
use std::path::Path;
use std::ptr::NonNull;

/// How a restore brings guest memory back (`vmm_snapshot_mem_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemMode {
    /// Read it into fresh memory (the files may go away afterwards).
    Eager,
    /// Map the memory file copy-on-write (restore time independent of guest size).
    Lazy,
    /// Run on the memory file itself.
    Shared,
}

/// Pauses the loops of `devices` and lists their transports for the C call.
fn device_ptrs<'a>(devices: &'a [&'a VirtioMmio<'a>]) -> (Vec<*mut sys::vmm_virtio_mmio>, Vec<crate::event_loop::Paused<'a>>) {
    let ptrs = devices.iter().map(|d| d.as_raw()).collect();
    let mut paused: Vec<crate::event_loop::Paused<'a>> = Vec::new();
    for d in devices {
        let lp = d.event_loop();
        if !paused.iter().any(|p| std::ptr::eq(p.event_loop(), lp)) {
            paused.push(lp.pause());
        }
    }
    (ptrs, paused)
}

impl Vm {
    /// Saves the VM to a state file and a memory file (`vmm_snapshot_save`). The vCPUs
    /// must be outside `run` (else -EBUSY).
    pub fn save(&self, state: impl AsRef<Path>, mem: impl AsRef<Path>) -> Result<()> {
        self.save_with_devices(state, mem, &[])
    }

    /// `save`, also storing the state of these virtio devices (their loops are paused
    /// meanwhile).
    pub fn save_with_devices(&self, state: impl AsRef<Path>, mem: impl AsRef<Path>, devices: &[&VirtioMmio<'_>])
        -> Result<()> {
        let sp = path_cstring(state.as_ref())?;
        let mp = path_cstring(mem.as_ref())?;
        let (ptrs, _paused) = device_ptrs(devices);
        let mut o = sys::vmm_snapshot_save_opts::default();
        o.state_path = sp.as_ptr();
        o.mem_path = mp.as_ptr();
        o.devices = ptrs.as_ptr();
        o.nr_devices = ptrs.len();
        let _g = self.ops_lock();
        // SAFETY: all pointers are valid for the call.
        check(unsafe { sys::vmm_snapshot_save(self.as_raw(), &o) }).map(|_| ())
    }

    /// Creates a VM from snapshot files (`vmm_snapshot_restore`). Its bus is empty:
    /// register devices before running it. `Vm::vcpu(i)` hands out the saved vCPUs.
    pub fn restore(state: impl AsRef<Path>, mem: impl AsRef<Path>, mode: MemMode) -> Result<Vm> {
        Vm::restore_with(state, mem, mode, &VmOptions::default())
    }

    /// `restore` with host-side options (kvm_path, kick_signal, dirty_ring_entries).
    pub fn restore_with(state: impl AsRef<Path>, mem: impl AsRef<Path>, mode: MemMode, host: &VmOptions)
        -> Result<Vm> {
        let sp = path_cstring(state.as_ref())?;
        let mp = path_cstring(mem.as_ref())?;
        let kp = host.kvm_path_c()?;
        let vo = host.to_raw(&kp);
        let mut o = sys::vmm_snapshot_restore_opts::default();
        o.state_path = sp.as_ptr();
        o.mem_path = mp.as_ptr();
        o.mem_mode = match mode {
            MemMode::Eager => sys::VMM_SNAPSHOT_MEM_EAGER,
            MemMode::Lazy => sys::VMM_SNAPSHOT_MEM_LAZY,
            MemMode::Shared => sys::VMM_SNAPSHOT_MEM_SHARED,
        };
        o.vm_opts = &vo;
        let mut raw = std::ptr::null_mut();
        // SAFETY: all pointers are valid for the call.
        check(unsafe { sys::vmm_snapshot_restore(&mut raw, &o) })?;
        // SAFETY: a new VM that we own.
        Ok(unsafe { Vm::from_raw(raw) })
    }
}

/// What a reset did.
pub type ResetStats = sys::vmm_snapshot_reset_stats;

/// An in-memory snapshot (`vmm_snapshot`): take one from a stopped VM, clone VMs from
/// it (copy-on-write memory), reset a bound VM back to it.
///
/// snapshot.h: a snapshot never changes after creation, so clone, reset, write and the
/// getters may run on one snapshot from several threads at once: `Send + Sync`. Each VM
/// takes part in one take, reset or clone at a time (serialized by the `Vm` wrapper).
/// Cloned VMs hold their own reference: they may outlive the `Snapshot`.
pub struct Snapshot {
    raw: NonNull<sys::vmm_snapshot>,
}

// SAFETY: see the type.
unsafe impl Send for Snapshot {}
unsafe impl Sync for Snapshot {}

impl Snapshot {
    /// Takes a snapshot of a stopped VM into memory and binds the VM to it.
    pub fn take(vm: &Vm) -> Result<Snapshot> {
        Snapshot::take_with_devices(vm, &[])
    }

    /// `take`, also keeping the state of these devices (their loops are paused).
    pub fn take_with_devices(vm: &Vm, devices: &[&VirtioMmio<'_>]) -> Result<Snapshot> {
        let (ptrs, _paused) = device_ptrs(devices);
        let mut o = sys::vmm_snapshot_take_opts::default();
        o.devices = ptrs.as_ptr();
        o.nr_devices = ptrs.len();
        let mut raw = std::ptr::null_mut();
        let _g = vm.ops_lock();
        // SAFETY: valid pointers.
        check(unsafe { sys::vmm_snapshot_take(vm.as_raw(), &o, &mut raw) })?;
        Ok(Snapshot { raw: NonNull::new(raw).expect("NULL snapshot") })
    }

    /// Opens snapshot files (read lazily; they must stay unchanged while it lives).
    pub fn open(state: impl AsRef<Path>, mem: impl AsRef<Path>) -> Result<Snapshot> {
        let sp = path_cstring(state.as_ref())?;
        let mp = path_cstring(mem.as_ref())?;
        let mut o = sys::vmm_snapshot_restore_opts::default();
        o.state_path = sp.as_ptr();
        o.mem_path = mp.as_ptr();
        let mut raw = std::ptr::null_mut();
        // SAFETY: valid pointers.
        check(unsafe { sys::vmm_snapshot_open(&mut raw, &o) })?;
        Ok(Snapshot { raw: NonNull::new(raw).expect("NULL snapshot") })
    }

    pub fn as_raw(&self) -> *mut sys::vmm_snapshot {
        self.raw.as_ptr()
    }

    /// Writes the snapshot to a state file and a memory file.
    pub fn write(&self, state: impl AsRef<Path>, mem: impl AsRef<Path>) -> Result<()> {
        let sp = path_cstring(state.as_ref())?;
        let mp = path_cstring(mem.as_ref())?;
        let mut o = sys::vmm_snapshot_save_opts::default();
        o.state_path = sp.as_ptr();
        o.mem_path = mp.as_ptr();
        // SAFETY: valid pointers.
        check(unsafe { sys::vmm_snapshot_write(self.as_raw(), &o) }).map(|_| ())
    }

    /// A new VM from the snapshot (copy-on-write memory), bound to it.
    pub fn clone_vm(&self) -> Result<Vm> {
        self.clone_vm_with(&VmOptions::default())
    }

    pub fn clone_vm_with(&self, host: &VmOptions) -> Result<Vm> {
        let kp = host.kvm_path_c()?;
        let vo = host.to_raw(&kp);
        let mut raw = std::ptr::null_mut();
        // SAFETY: valid pointers.
        check(unsafe { sys::vmm_snapshot_clone(self.as_raw(), &vo, &mut raw) })?;
        // SAFETY: a new VM that we own (it holds its own snapshot reference).
        Ok(unsafe { Vm::from_raw(raw) })
    }

    /// Brings `vm` (bound to this snapshot) back to it: copies back the dirtied pages
    /// and reloads every vCPU and the irqchip. Its vCPUs must be outside `run`.
    pub fn reset(&self, vm: &Vm) -> Result<ResetStats> {
        self.reset_with_devices(vm, &[])
    }

    /// `reset`, also reloading the device states into `devices` (in take order).
    pub fn reset_with_devices(&self, vm: &Vm, devices: &[&VirtioMmio<'_>]) -> Result<ResetStats> {
        let (ptrs, _paused) = device_ptrs(devices);
        let mut o = sys::vmm_snapshot_reset_opts::default();
        o.devices = ptrs.as_ptr();
        o.nr_devices = ptrs.len();
        let mut stats = ResetStats::default();
        let _g = vm.ops_lock();
        // SAFETY: valid pointers; one reset per VM at a time (ops lock).
        check(unsafe { sys::vmm_snapshot_reset_with(self.as_raw(), vm.as_raw(), &o, &mut stats) })?;
        Ok(stats)
    }

    pub fn mem_size(&self) -> u64 {
        // SAFETY: getter on an immutable snapshot.
        unsafe { sys::vmm_snapshot_mem_size(self.as_raw()) }
    }

    pub fn vcpu_count(&self) -> usize {
        // SAFETY: as above.
        unsafe { sys::vmm_snapshot_vcpu_count(self.as_raw()) }
    }

    pub fn device_count(&self) -> usize {
        // SAFETY: as above.
        unsafe { sys::vmm_snapshot_device_count(self.as_raw()) }
    }

    /// Device state blob i (for `VirtioMmio::load_state` on a clone's device).
    pub fn device_state(&self, i: usize) -> Result<&[u8]> {
        let mut p: *const c_void = std::ptr::null();
        let mut len = 0usize;
        // SAFETY: valid out pointers.
        check(unsafe { sys::vmm_snapshot_device_state(self.as_raw(), i, &mut p, &mut len) })?;
        if p.is_null() {
            return if len == 0 { Ok(&[]) } else { Err(Error::new(errno::EINVAL, "NULL device state")) };
        }
        // SAFETY: valid while the snapshot lives, which the borrow of self ensures.
        Ok(unsafe { std::slice::from_raw_parts(p as *const u8, len) })
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        // SAFETY: drops our reference; clones keep theirs.
        unsafe { sys::vmm_snapshot_free(self.raw.as_ptr()) }
    }
}
