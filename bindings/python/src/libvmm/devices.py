"""Virtio devices with Python back ends, attached through the virtio-mmio transport
(include/libvmm/virtio*.h). A device object is created alone, then attached with
VM.attach(device, base, gsi); the transport then owns the C device, and the device's
I/O runs on the VM's loop thread (VM.loop)."""
import ctypes
import errno
import os

from . import _callback, _lib
from . import _structs as S
from .errors import VmmError, check

MMIO_SIZE = 0x1000

# Device status bits (vmm_virtio_mmio_status).
STATUS_ACKNOWLEDGE = 1
STATUS_DRIVER = 2
STATUS_DRIVER_OK = 4
STATUS_FEATURES_OK = 8
STATUS_NEEDS_RESET = 64
STATUS_FAILED = 128

# vmm_console_backend and vmm_virtio_blk_opts.flags
CONSOLE_FD = 0
CONSOLE_PTY = 1
CONSOLE_CALLBACK = 2
BLK_READONLY = 1 << 0
BLK_DIRECT = 1 << 1


class VirtioDevice:
    """Base of the devices below: owns the C device until it is attached."""

    def __init__(self):
        self._handle = None
        self._transport = None
        self._keep = []   # ctypes thunks and buffers C keeps pointers to

    def _set(self, handle):
        self._handle = handle

    @property
    def attached(self):
        return self._transport is not None

    def _h(self):
        if not self._handle:
            raise ValueError(f"{type(self).__name__}: device is closed")
        return self._handle

    def close(self):
        """Frees a device that was never attached (attached ones go with their VM)."""
        h, self._handle = self._handle, None
        if h and self._transport is None:
            _lib.lib().vmm_virtio_device_destroy(h)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class Console(VirtioDevice):
    """virtio-console. With `output` (a callable taking bytes), guest output goes to it
    on the loop thread and input() feeds the guest; else with in_fd/out_fd, the fds.
    An `output` callback that raises has its exception re-raised by the VM's next
    VCPU.run or VM.raise_pending()."""

    def __init__(self, output=None, *, in_fd=-1, out_fd=-1, cols=0, rows=0):
        super().__init__()
        self._output = output
        self._pending = _callback.Pending()
        if output is not None:
            def out(_ctx, data, n):
                self._output(ctypes.string_at(data, n))
            thunk = S.CONSOLE_OUTPUT_FN(_callback.guard(self._pending, out, None))
            self._keep.append(thunk)
            o = S.vmm_virtio_console_opts.new(backend=CONSOLE_CALLBACK, output=thunk, cols=cols, rows=rows)
        else:
            o = S.vmm_virtio_console_opts.new(backend=CONSOLE_FD, in_fd=in_fd, out_fd=out_fd,
                                              cols=cols, rows=rows)
        h = ctypes.c_void_p()
        check(_lib.lib().vmm_virtio_console_create(ctypes.byref(h), ctypes.byref(o)),
              "vmm_virtio_console_create")
        self._set(h.value)

    def input(self, data):
        """Queues bytes for the guest (callback back end); any thread. Returns how many
        were accepted (the buffer holds 64 KiB)."""
        data = bytes(data)
        return int(check(_lib.lib().vmm_virtio_console_input(self._h(), data, len(data)),
                         "vmm_virtio_console_input"))


class Blk(VirtioDevice):
    """virtio-blk on a raw image: `path` (str or os.PathLike) or an open `fd` (dup'ed)."""

    def __init__(self, path=None, *, fd=-1, readonly=False, direct=False, serial=None,
                 ops_per_sec=0, bytes_per_sec=0):
        super().__init__()
        flags = (BLK_READONLY if readonly else 0) | (BLK_DIRECT if direct else 0)
        o = S.vmm_virtio_blk_opts.new(flags=flags,
                                      path=os.fsencode(path) if path is not None else None,
                                      fd=fd, id=serial.encode() if serial else None,
                                      ops_per_sec=ops_per_sec, bytes_per_sec=bytes_per_sec)
        h = ctypes.c_void_p()
        check(_lib.lib().vmm_virtio_blk_create(ctypes.byref(h), ctypes.byref(o)),
              "vmm_virtio_blk_create")
        self._set(h.value)

    def stats(self):
        """The request counters as a dict."""
        st = S.vmm_virtio_blk_stats()
        check(_lib.lib().vmm_virtio_blk_get_stats(self._h(), ctypes.byref(st)),
              "vmm_virtio_blk_get_stats")
        return {n: getattr(st, n) for n, _ in S.vmm_virtio_blk_stats._fields_}


class Rng(VirtioDevice):
    """virtio-rng (getrandom(2))."""

    def __init__(self, max_bytes_per_request=0):
        super().__init__()
        o = S.vmm_virtio_rng_opts.new(max_bytes_per_request=max_bytes_per_request)
        h = ctypes.c_void_p()
        check(_lib.lib().vmm_virtio_rng_create(ctypes.byref(h), ctypes.byref(o)),
              "vmm_virtio_rng_create")
        self._set(h.value)


class Transport:
    """A device attached to a VM through virtio-mmio (VM.attach). Closed with the VM."""

    def __init__(self, vm, handle, device, base, gsi):
        self._vm = vm
        self._handle = handle
        self.device = device
        self.base = base
        self.gsi = gsi

    def _h(self):
        if not self._handle:
            raise ValueError("transport of a closed VM")
        return self._handle

    @property
    def status(self):
        """The device status register (STATUS_* bits)."""
        return _lib.lib().vmm_virtio_mmio_status(self._h())

    @property
    def error(self):
        """Why the device needs a reset ("" if it does not)."""
        buf = ctypes.create_string_buffer(512)
        _lib.lib().vmm_virtio_mmio_error(self._h(), buf, len(buf))
        return buf.value.decode(errors="replace")

    @property
    def cmdline(self):
        """The Linux command-line fragment, e.g. "virtio_mmio.device=4K@0xd0000000:5"."""
        buf = ctypes.create_string_buffer(128)
        n = _lib.lib().vmm_virtio_mmio_cmdline(self._h(), buf, len(buf))
        if n < 0 or n >= len(buf):
            raise VmmError(errno.ENOSPC, "command line fragment too long", "vmm_virtio_mmio_cmdline")
        return buf.value.decode()

    def stats(self):
        st = S.vmm_virtio_mmio_stats()
        _lib.lib().vmm_virtio_mmio_get_stats(self._h(), ctypes.byref(st))
        return {"notifies": st.notifies, "interrupts": st.interrupts}

    def save_state(self):
        """The transport's and device's state as a blob (vmm_virtio_mmio_save_state), for
        load_state() on a device re-created on a restored VM. The VM's vCPUs must be
        stopped; the loop is paused for the call."""
        fn = _lib.need("vmm_virtio_mmio_save_state", "Transport.save_state")
        with self._vm._loop_paused():
            n = ctypes.c_size_t()
            check(fn(self._h(), None, 0, ctypes.byref(n)), "vmm_virtio_mmio_save_state")
            buf = ctypes.create_string_buffer(max(n.value, 1))
            check(fn(self._h(), buf, n.value, ctypes.byref(n)), "vmm_virtio_mmio_save_state")
        return buf.raw[:n.value]

    def load_state(self, blob):
        """Loads a blob from save_state() (validated by the library: a bad blob raises
        VmmError and changes nothing). vCPUs stopped; the loop is paused for the call."""
        fn = _lib.need("vmm_virtio_mmio_load_state", "Transport.load_state")
        data = bytes(blob)
        with self._vm._loop_paused():
            check(fn(self._h(), data, len(data)), "vmm_virtio_mmio_load_state")
