"""Port I/O and MMIO handlers in Python (include/libvmm/bus.h)."""
import ctypes
import enum
import threading

from . import _callback, _lib
from . import _structs as S
from .errors import check


class Space(enum.IntEnum):
    PIO = 0
    MMIO = 1


class Bus:
    """The I/O bus of a VM (borrowed: valid while its VM is open).

    Handlers are Python callables: ``read(offset, size) -> int`` and
    ``write(offset, size, value)``, with `offset` relative to the range's base and
    `size` 1, 2, 4 or 8. They run on the thread of the vCPU that exited (inside
    VCPU.run). One that raises makes the access read all-ones (or drops the write), and
    the exception is re-raised by the VCPU.run that was running. The thunks C calls are
    kept alive until the range is unregistered or the VM closed."""

    def __init__(self, vm):
        self._vm = vm
        self._lock = threading.Lock()
        self._thunks = {}  # (space, base) -> the vmm_bus_ops holding the CFUNCTYPE thunks

    @property
    def _h(self):
        return self._vm._bus_handle()

    def register(self, space, base, length, read=None, write=None):
        """Registers [base, base + length) in `space` (Space.PIO or Space.MMIO). Raises
        VmmError EEXIST if the range overlaps a registered one."""
        space = Space(space)
        pending = self._vm._pending
        ops = S.vmm_bus_ops()
        if read is not None:
            def rd(_opaque, offset, size, _fn=read):
                return int(_fn(offset, size)) & ((1 << (8 * size)) - 1)
            ops.read = S.BUS_READ_FN(_callback.guard(pending, rd, (1 << 64) - 1))
        if write is not None:
            def wr(_opaque, offset, size, value, _fn=write):
                _fn(offset, size, value)
            ops.write = S.BUS_WRITE_FN(_callback.guard(pending, wr, None))
        # No Python lock is held across the C call: a handler of the other space may be
        # running, and registering from it must not deadlock with us. `ops` (and the
        # thunks) stay alive through the local until they are stored.
        check(_lib.lib().vmm_bus_register(self._h, int(space), base, length,
                                          ctypes.byref(ops), None), "vmm_bus_register")
        with self._lock:
            self._thunks[(space, base)] = ops

    def register_pio(self, port, length, read=None, write=None):
        self.register(Space.PIO, port, length, read, write)

    def register_mmio(self, addr, length, read=None, write=None):
        self.register(Space.MMIO, addr, length, read, write)

    def unregister(self, space, base):
        """Unregisters the range at `base` (VmmError ENOENT if none). When it returns,
        its handlers are not running and will not run again."""
        space = Space(space)
        check(_lib.lib().vmm_bus_unregister(self._h, int(space), base), "vmm_bus_unregister")
        with self._lock:
            self._thunks.pop((space, base), None)

    def read(self, space, addr, size):
        """Dispatches a read as a vCPU exit would; returns the value (all-ones and
        VmmError ENOENT when no device claims it)."""
        buf = (ctypes.c_uint8 * 8)()
        check(_lib.lib().vmm_bus_read(self._h, int(space), addr, buf, size), "vmm_bus_read")
        self._vm._pending.raise_if_any()
        return int.from_bytes(bytes(buf[:size]), "little")

    def write(self, space, addr, size, value):
        """Dispatches a write as a vCPU exit would."""
        buf = (ctypes.c_uint8 * 8)(*int(value).to_bytes(8, "little"))
        check(_lib.lib().vmm_bus_write(self._h, int(space), addr, buf, size), "vmm_bus_write")
        self._vm._pending.raise_if_any()
