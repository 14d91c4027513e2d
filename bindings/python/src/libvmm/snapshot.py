"""Snapshots (include/libvmm/snapshot.h): save a stopped VM to files, restore new VMs.

Files are given as paths (str / os.PathLike) or open file descriptors (int; they stay
the caller's). Devices are not part of a snapshot: attach them again to the restored VM.
"""
import contextlib
import ctypes
import enum
import os

from . import _lib
from . import _structs as S
from .errors import check

SAVE_MEM_IN_PLACE = 1 << 0
SAVE_SYNC = 1 << 1
RESTORE_ANY_TSC_KHZ = 1 << 0
MAX_STATE_SIZE = 64 << 20
FORMAT_VERSION = 1


class MemMode(enum.IntEnum):
    EAGER = 0
    LAZY = 1
    SHARED = 2


def _path_or_fd(x):
    """(path bytes or None, fd or -1)"""
    if x is None:
        return None, -1
    if isinstance(x, int):
        return None, x
    return os.fsencode(x), -1


def _quiescent(vm, devices):
    """Devices in a snapshot must be quiescent: pause the VM's loop thread meanwhile."""
    return vm._loop_paused() if devices else contextlib.nullcontext()


def _devices_arg(devices, keep):
    """(POINTER(c_void_p) or None, count) for a list of Transports."""
    if not devices:
        return None, 0
    arr = (ctypes.c_void_p * len(devices))(*[t._h() for t in devices])
    keep.append(arr)
    return ctypes.cast(arr, ctypes.POINTER(ctypes.c_void_p)), len(devices)


def save(vm, state, mem=None, *, in_place=False, sync=False, devices=None):
    """Saves `vm` (no vCPU inside run()) to `state` and, unless in_place, `mem`.
    in_place: memory stays in the regions' memfds; restore then needs region_fds
    (dup them from vm.memory.regions()). Raises VmmError: EBUSY (a vCPU is running),
    ENOTSUP (split irqchip), EINVAL (bad arguments)."""
    sp, sfd = _path_or_fd(state)
    mp, mfd = _path_or_fd(mem)
    flags = (SAVE_MEM_IN_PLACE if in_place else 0) | (SAVE_SYNC if sync else 0)
    o = S.vmm_snapshot_save_opts.new(flags=flags, state_path=sp, state_fd=sfd, mem_path=mp,
                                     mem_fd=mfd)
    keep = []
    if devices:
        o.devices, o.nr_devices = _devices_arg(devices, keep)
    with _quiescent(vm, devices):
        check(_lib.lib().vmm_snapshot_save(vm._h(), ctypes.byref(o)), "vmm_snapshot_save")


def _restore_opts(state, mem, mode, region_fds, any_tsc_khz, keep):
    o = S.vmm_snapshot_restore_opts.new(flags=RESTORE_ANY_TSC_KHZ if any_tsc_khz else 0,
                                        mem_mode=int(mode))
    if isinstance(state, (bytes, bytearray, memoryview)):
        buf = bytes(state)
        keep.append(buf)
        o.state_buf = ctypes.cast(ctypes.c_char_p(buf), ctypes.c_void_p)
        o.state_len = len(buf)
    else:
        o.state_path, o.state_fd = _path_or_fd(state)
    o.mem_path, o.mem_fd = _path_or_fd(mem)
    if region_fds is not None:
        fds = (ctypes.c_int * len(region_fds))(*region_fds)
        keep.append(fds)
        o.region_fds = ctypes.cast(fds, ctypes.POINTER(ctypes.c_int))
        o.nr_region_fds = len(region_fds)
    return o


def restore(state, mem=None, *, mode=MemMode.EAGER, region_fds=None, any_tsc_khz=False,
            kvm_path=None, kick_signal=0, dirty_ring_entries=0, dontfork=False):
    """A new VM from a snapshot: `state` is a path, an fd, or the state file's bytes;
    `mem` the memory file (path or fd), or region_fds for an in-place snapshot. `mode`:
    MemMode.EAGER (copy into fresh memory), LAZY (copy-on-write mapping of `mem`),
    SHARED. The VM comes with its vCPUs (vm.vcpus, in the saved order) and an empty bus.
    Raises VmmError: EINVAL (malformed state, wrong memory file), EBADMSG (corrupted)."""
    from .vm import VM
    if isinstance(mode, str):
        mode = MemMode[mode.upper()]
    keep = []
    o = _restore_opts(state, mem, mode, region_fds, any_tsc_khz, keep)
    vo = _host_opts(kvm_path, kick_signal, dirty_ring_entries, dontfork)
    o.vm_opts = ctypes.pointer(vo)
    h = ctypes.c_void_p()
    check(_lib.lib().vmm_snapshot_restore(ctypes.byref(h), ctypes.byref(o)), "vmm_snapshot_restore")
    return VM(_handle=h.value)


def _host_opts(kvm_path, kick_signal, dirty_ring_entries, dontfork):
    """Host-side VM options of restore and clone (dontfork: VMM_VM_DONTFORK)."""
    from .vm import DONTFORK
    return S.vmm_vm_opts.new(flags=DONTFORK if dontfork else 0,
                             kvm_path=os.fsencode(kvm_path) if kvm_path else None,
                             kick_signal=kick_signal, dirty_ring_entries=dirty_ring_entries)


class Snapshot:
    """An in-memory snapshot (vmm_snapshot): take() one of a stopped VM, or open() saved
    files; then clone() new VMs from it (copy-on-write memory, cost independent of guest
    size) and reset() a bound VM back to it (copies back only dirtied pages). Immutable:
    clone/reset may run on several threads at once, each on its own VM. Clones keep the
    snapshot's memory alive after close()."""

    def __init__(self, handle):
        self._handle = handle

    @classmethod
    def take(cls, vm, devices=None):
        """Snapshot of `vm` (no vCPU inside run()); binds vm for reset()."""
        fn = _lib.need("vmm_snapshot_take", "Snapshot.take")
        keep = []
        o = S.vmm_snapshot_take_opts.new()
        if devices:
            o.devices, o.nr_devices = _devices_arg(devices, keep)
        h = ctypes.c_void_p()
        with _quiescent(vm, devices):
            check(fn(vm._h(), ctypes.byref(o), ctypes.byref(h)), "vmm_snapshot_take")
        return cls(h.value)

    @classmethod
    def open(cls, state, mem=None, *, region_fds=None, any_tsc_khz=False):
        """Opens snapshot files (as for restore()); they must stay unchanged while the
        snapshot lives."""
        fn = _lib.need("vmm_snapshot_open", "Snapshot.open")
        keep = []
        o = _restore_opts(state, mem, MemMode.EAGER, region_fds, any_tsc_khz, keep)
        h = ctypes.c_void_p()
        check(fn(ctypes.byref(h), ctypes.byref(o)), "vmm_snapshot_open")
        return cls(h.value)

    def _h(self):
        if not self._handle:
            raise ValueError("snapshot is closed")
        return self._handle

    def close(self):
        """Drops this reference (VMs cloned from it keep theirs)."""
        h, self._handle = self._handle, None
        if h:
            _lib.lib().vmm_snapshot_free(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def write(self, state, mem):
        """Writes the snapshot to files, as save() would have."""
        sp, sfd = _path_or_fd(state)
        mp, mfd = _path_or_fd(mem)
        o = S.vmm_snapshot_save_opts.new(state_path=sp, state_fd=sfd, mem_path=mp, mem_fd=mfd)
        check(_lib.lib().vmm_snapshot_write(self._h(), ctypes.byref(o)), "vmm_snapshot_write")

    def clone(self, *, kvm_path=None, kick_signal=0, dirty_ring_entries=0, dontfork=False):
        """A new VM from the snapshot, with its vCPUs and an empty bus, bound for reset()."""
        from .vm import VM
        vo = _host_opts(kvm_path, kick_signal, dirty_ring_entries, dontfork)
        h = ctypes.c_void_p()
        check(_lib.lib().vmm_snapshot_clone(self._h(), ctypes.byref(vo), ctypes.byref(h)),
              "vmm_snapshot_clone")
        return VM(_handle=h.value)

    def reset(self, vm, devices=None):
        """Brings `vm` (bound to this snapshot, no vCPU inside run()) back to it in place.
        Returns the reset's statistics as a dict (pages_copied, ns_total, ...)."""
        st = S.vmm_snapshot_reset_stats.new()
        L = _lib.lib()
        if devices:
            keep = []
            o = S.vmm_snapshot_reset_opts.new()
            o.devices, o.nr_devices = _devices_arg(devices, keep)
            with _quiescent(vm, devices):
                r = L.vmm_snapshot_reset_with(self._h(), vm._h(), ctypes.byref(o),
                                              ctypes.byref(st))
        else:
            r = L.vmm_snapshot_reset(self._h(), vm._h(), ctypes.byref(st))
        check(r, "vmm_snapshot_reset")
        return {n: getattr(st, n) for n, _ in S.vmm_snapshot_reset_stats._fields_ if n != "size"}

    @property
    def mem_size(self):
        return _lib.lib().vmm_snapshot_mem_size(self._h())

    @property
    def vcpu_count(self):
        return _lib.lib().vmm_snapshot_vcpu_count(self._h())

    @property
    def device_count(self):
        return _lib.lib().vmm_snapshot_device_count(self._h())

    def device_state(self, i):
        """Device state blob i (bytes), for a device re-created on a clone."""
        p, n = ctypes.c_void_p(), ctypes.c_size_t()
        check(_lib.lib().vmm_snapshot_device_state(self._h(), i, ctypes.byref(p), ctypes.byref(n)),
              "vmm_snapshot_device_state")
        return ctypes.string_at(p.value, n.value) if n.value else b""
