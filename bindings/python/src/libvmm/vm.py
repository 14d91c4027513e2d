"""The virtual machine (include/libvmm/vm.h) and the device loop (loop.h)."""
import atexit
import contextlib
import ctypes
import enum
import os
import threading
import time
import weakref

from . import _callback, _lib
from . import _structs as S
from .bus import Bus
from .devices import Transport, VirtioDevice
from .errors import VmmError, check, last_error
from .memory import Memory
from .vcpu import VCPU


# Open VMs, closed at interpreter exit while threads can still run (after that, a loop
# thread calling back into Python would hang, and module globals are being torn down).
_live = weakref.WeakSet()


@atexit.register
def _close_all():
    for vm in list(_live):
        try:
            vm.close()
        except Exception:
            pass


class Irqchip(enum.IntEnum):
    KERNEL = 0
    SPLIT = 1
    NONE = 2


NO_PIT = 1 << 0
EXIT_ON_UNHANDLED_IO = 1 << 1
DONTFORK = 1 << 2


class Loop:
    """A vmm_loop (epoll set that virtio devices do their I/O on), run by start() on a
    Python thread of its own (the GIL is released while it waits in C)."""

    def __init__(self):
        h = ctypes.c_void_p()
        check(_lib.lib().vmm_loop_create(ctypes.byref(h)), "vmm_loop_create")
        self._handle = h.value
        self._thread = None
        self._result = 0
        self._detail = ""

    @property
    def running(self):
        return self._thread is not None

    def start(self):
        if self._thread is not None:
            return
        if not self._handle:
            raise ValueError("loop is closed")
        h = self._handle

        def main():
            r = _lib.lib().vmm_loop_run(h)
            self._result, self._detail = r, (last_error() if r < 0 else "")

        self._thread = threading.Thread(target=main, name="libvmm-loop", daemon=True)
        self._thread.start()

    def stop(self):
        """Stops the loop thread and waits for it. Raises VmmError if the loop failed."""
        t, self._thread = self._thread, None
        if t is None:
            return
        _lib.lib().vmm_loop_stop(self._handle)
        t.join()
        if self._result < 0:
            r, self._result = self._result, 0
            raise VmmError(-r, self._detail, "vmm_loop_run")

    def close(self):
        try:
            self.stop()
        finally:
            h, self._handle = self._handle, None
            if h:
                _lib.lib().vmm_loop_destroy(h)


class VM:
    """A KVM virtual machine: memory (VM.memory), I/O bus (VM.bus), vCPUs, devices.

    Use it as a context manager (or call close()); a VM that is garbage-collected open is
    closed then. Every object it hands out (VCPU, Memory, Bus, Transport) is valid while
    it is open and raises ValueError afterwards, never crashes.

        with libvmm.VM() as vm:
            vm.memory.add_region(0, 32 << 20)
            info = vm.load_elf("hello.elf")
            cpu = vm.create_vcpu()
            cpu.setup_long_mode(info.entry, 0x800000, cpl=3)
            print(cpu.run())
    """

    def __init__(self, *, irqchip=Irqchip.KERNEL, no_pit=False, exit_on_unhandled_io=False,
                 dontfork=False, exit_port=0, fault_port=0, kick_signal=0, dirty_ring_entries=0,
                 kvm_path=None, _handle=None):
        self._handle = None
        self._pending = _callback.Pending()
        self._run_lock = threading.Lock()
        self._running = 0
        self._closing = False
        self._vcpus = []
        self._transports = []
        self._loop = None
        if _handle is None:
            if isinstance(irqchip, str):
                irqchip = Irqchip[irqchip.upper()]
            flags = ((NO_PIT if no_pit else 0) | (EXIT_ON_UNHANDLED_IO if exit_on_unhandled_io else 0)
                     | (DONTFORK if dontfork else 0))
            o = S.vmm_vm_opts.new(flags=flags, irqchip=int(irqchip),
                                  kvm_path=os.fsencode(kvm_path) if kvm_path else None,
                                  exit_port=exit_port, fault_port=fault_port,
                                  kick_signal=kick_signal, dirty_ring_entries=dirty_ring_entries)
            h = ctypes.c_void_p()
            check(_lib.lib().vmm_vm_create(ctypes.byref(h), ctypes.byref(o)), "vmm_vm_create")
            _handle = h.value
        self._handle = _handle
        _live.add(self)
        L = _lib.lib()
        self._mem = L.vmm_vm_mem(_handle)
        self._bus = L.vmm_vm_bus(_handle)
        self.memory = Memory(self)
        self.bus = Bus(self)
        for i in range(L.vmm_vm_vcpu_count(_handle)):  # a restored VM comes with vCPUs
            self._vcpus.append(VCPU(self, L.vmm_vm_get_vcpu(_handle, i)))

    # ---- lifetime ----
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        # The garbage collector may run on any thread, including this VM's loop thread
        # or a thread inside run() of one of its vCPUs, where close() cannot wait for
        # them: close from a thread of its own then.
        try:
            if not self._handle:
                return
            loop = self._loop
            cur = _callback.current_vcpu()
            if (loop is not None and loop._thread is threading.current_thread()) or \
                    (cur is not None and cur._vm is self):
                threading.Thread(target=self.close, name="libvmm-close", daemon=True).start()
            else:
                self.close()
        except Exception:
            pass

    def __repr__(self):
        return f"<libvmm.VM {'open' if self._handle else 'closed'} vcpus={len(self._vcpus)}>"

    @property
    def closed(self):
        return not self._handle

    def close(self):
        """Stops the loop, destroys devices, vCPUs and the VM. vCPUs running in other
        threads are kicked and waited for (their run() then raises ValueError). Not from
        inside a callback of this VM's vCPUs."""
        if not self._handle:
            return
        cur = _callback.current_vcpu()
        if cur is not None and cur._vm is self:
            raise RuntimeError("VM.close() from a callback of its own vCPU")
        with self._run_lock:
            self._closing = True
        while self._running:  # kick until every run() on another thread has returned
            for v in self._vcpus:
                v.kick()
            time.sleep(0.005)
        L = _lib.lib()
        try:
            if self._loop is not None:
                self._loop.stop()
        finally:
            for t in self._transports:
                L.vmm_virtio_mmio_destroy(t._handle)
                t._handle = None
                t.device._handle = None
            self._transports = []
            for v in self._vcpus:
                v._handle = None
            self.memory._close_maps()
            h, self._handle = self._handle, None
            L.vmm_vm_destroy(h)
            if self._loop is not None:
                self._loop.close()
                self._loop = None
            self.bus._thunks.clear()

    def _h(self):
        if not self._handle:
            raise ValueError("VM is closed")
        return self._handle

    def _mem_handle(self):
        self._h()
        return self._mem

    def _bus_handle(self):
        self._h()
        return self._bus

    def _enter_run(self):
        with self._run_lock:
            if self._closing or not self._handle:
                raise ValueError("VM is closed")
            self._running += 1

    def _leave_run(self):
        with self._run_lock:
            self._running -= 1

    def raise_pending(self):
        """Re-raises an exception a callback of this VM raised (console output on the
        loop thread, bus handlers), if any. VCPU.run does this by itself."""
        self._pending.raise_if_any()

    # ---- vCPUs ----
    def create_vcpu(self, id=None):
        """Creates a vCPU (id: default the next unused one). VmmError EEXIST if the id is
        taken."""
        if id is None:
            used = {v.id for v in self._vcpus}
            id = next(i for i in range(len(used) + 1) if i not in used)
        o = S.vmm_vcpu_opts.new(id=id)
        h = ctypes.c_void_p()
        check(_lib.lib().vmm_vcpu_create(ctypes.byref(h), self._h(), ctypes.byref(o)),
              "vmm_vcpu_create")
        v = VCPU(self, h.value)
        self._vcpus.append(v)
        return v

    @property
    def vcpus(self):
        return list(self._vcpus)

    # ---- guest images ----
    def load_elf(self, image):
        """Loads an ELF executable (path, or bytes-like image) into guest memory at its
        physical addresses; returns ElfInfo(entry, low, high, segments)."""
        info = S.vmm_elf_info()
        L = _lib.lib()
        if isinstance(image, (str, os.PathLike)):
            check(L.vmm_elf_load_file(self._mem_handle(), os.fsencode(image), ctypes.byref(info)),
                  "vmm_elf_load_file")
        else:
            data = bytes(image)
            check(L.vmm_elf_load(self._mem_handle(), data, len(data), ctypes.byref(info)),
                  "vmm_elf_load")
        return ElfInfo(info.entry, info.low, info.high, info.segments)

    # ---- ports and system events ----
    @property
    def exit_port(self):
        return _lib.lib().vmm_vm_exit_port(self._h())

    @property
    def fault_port(self):
        return _lib.lib().vmm_vm_fault_port(self._h())

    def request_stop(self, event=1):
        """Stops every vCPU with ExitReason.SYSTEM_EVENT (1 shutdown, 2 reset) until
        clear_stop(). Any thread."""
        _lib.lib().vmm_vm_request_stop(self._h(), event)

    @property
    def stop_requested(self):
        return _lib.lib().vmm_vm_stop_requested(self._h())

    def clear_stop(self):
        _lib.lib().vmm_vm_clear_stop(self._h())

    # ---- devices ----
    @property
    def loop(self):
        """The VM's device loop (created on first use, run on its own thread by
        attach())."""
        self._h()
        if self._loop is None:
            self._loop = Loop()
        return self._loop

    def attach(self, device, base, gsi):
        """Attaches a virtio device at MMIO `base` (4 KiB aligned) with interrupt line
        `gsi`, and (re)starts the loop thread. The VM owns the device from then on.
        Returns its Transport."""
        if not isinstance(device, VirtioDevice):
            raise TypeError("attach() takes a libvmm device (Console, Blk, Rng)")
        if device.attached:
            raise ValueError("device is already attached")
        loop = self.loop
        was_running = loop.running
        loop.stop()  # attach must not race with the loop
        try:
            o = S.vmm_virtio_mmio_opts.new(base=base, gsi=gsi)
            h = ctypes.c_void_p()
            check(_lib.lib().vmm_virtio_mmio_attach(ctypes.byref(h), self._h(), loop._handle,
                                                    ctypes.byref(o), device._h()),
                  "vmm_virtio_mmio_attach")
        finally:
            if was_running or self._transports:
                loop.start()
        t = Transport(self, h.value, device, base, gsi)
        device._transport = t
        pending = getattr(device, "_pending", None)
        if pending is not None:
            self._pending.adopt(pending)
        self._transports.append(t)
        loop.start()
        return t

    @contextlib.contextmanager
    def _loop_paused(self):
        """Stops the loop thread for the duration (calls that must not race with it)."""
        loop = self._loop
        running = loop is not None and loop.running
        if running:
            loop.stop()
        try:
            yield
        finally:
            if running:
                loop.start()

    # ---- snapshots ----
    def save(self, state, mem=None, *, in_place=False, sync=False, devices=None):
        """Saves the stopped VM (no vCPU inside run()): see libvmm.snapshot.save."""
        from . import snapshot
        snapshot.save(self, state, mem, in_place=in_place, sync=sync, devices=devices)

    def take_snapshot(self, devices=None):
        """An in-memory Snapshot of the stopped VM (see libvmm.Snapshot)."""
        from .snapshot import Snapshot
        return Snapshot.take(self, devices)

    @classmethod
    def restore(cls, state, mem=None, **kw):
        """A new VM from a snapshot: see libvmm.snapshot.restore."""
        from . import snapshot
        return snapshot.restore(state, mem, **kw)


class ElfInfo:
    __slots__ = ("entry", "low", "high", "segments")

    def __init__(self, entry, low, high, segments):
        self.entry, self.low, self.high, self.segments = entry, low, high, segments

    def __repr__(self):
        return (f"ElfInfo(entry={self.entry:#x}, low={self.low:#x}, high={self.high:#x}, "
                f"segments={self.segments})")


def elf_symbol(image, name):
    """The value of symbol `name` in an ELF image (path or bytes-like); VmmError ENOENT if
    absent."""
    if isinstance(image, (str, os.PathLike)):
        with open(image, "rb") as f:
            image = f.read()
    data = bytes(image)
    v = ctypes.c_uint64()
    check(_lib.lib().vmm_elf_symbol(data, len(data), name.encode(), ctypes.byref(v)),
          "vmm_elf_symbol")
    return v.value
