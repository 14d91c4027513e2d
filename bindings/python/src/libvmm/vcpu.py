"""Virtual CPUs (include/libvmm/vcpu.h)."""
import ctypes
import enum
import errno
import threading
from dataclasses import dataclass, fields

from . import _callback, _lib
from . import _structs as S
from .errors import VmmError, check, last_error


class ExitReason(enum.IntEnum):
    HLT = 1
    SHUTDOWN = 2
    GUEST = 3
    FAULT = 4
    KICK = 5
    IO = 6
    SYSTEM_EVENT = 7
    INTERNAL_ERROR = 8


SYSTEM_EVENT_SHUTDOWN = 1
SYSTEM_EVENT_RESET = 2
LONG_MODE_FAULT_IDT = 1 << 0
LONG_MODE_SYSTEM_AREA_SIZE = 0x20000


@dataclass
class Regs:
    """General-purpose registers (vmm_regs)."""
    rax: int = 0
    rbx: int = 0
    rcx: int = 0
    rdx: int = 0
    rsi: int = 0
    rdi: int = 0
    rsp: int = 0
    rbp: int = 0
    r8: int = 0
    r9: int = 0
    r10: int = 0
    r11: int = 0
    r12: int = 0
    r13: int = 0
    r14: int = 0
    r15: int = 0
    rip: int = 0
    rflags: int = 2

    @classmethod
    def _from_c(cls, c):
        return cls(**{n: getattr(c, n) for n in S.REG_NAMES})

    def _to_c(self):
        c = S.vmm_regs()
        for n in S.REG_NAMES:
            setattr(c, n, getattr(self, n))
        return c

    def __getitem__(self, name):
        return getattr(self, name)

    def __setitem__(self, name, value):
        if name not in S.REG_NAMES:
            raise KeyError(name)
        setattr(self, name, value)

    def keys(self):
        return [f.name for f in fields(self)]


_EXIT_FIELDS = ("code", "vector", "error_code", "rip", "cr2", "cs", "addr", "size", "is_write",
                "is_mmio", "value", "system_type", "suberror", "insn")
_DECIMAL = ("vector", "size", "suberror", "system_type")


class Exit:
    """Why VCPU.run returned. `reason` (an ExitReason) tells which other fields are set;
    the others are None.
      GUEST: code (the value written to the exit port)
      FAULT: vector, error_code (None if the exception has none), rip, cr2, cs
      IO: addr, size, is_write, is_mmio, value (of writes)
      SYSTEM_EVENT: system_type (SYSTEM_EVENT_SHUTDOWN, SYSTEM_EVENT_RESET, ...)
      INTERNAL_ERROR: rip, suberror, insn (the instruction bytes)
    A plain class with class-level defaults: VCPU.run builds one per exit, cheaply."""
    code = vector = error_code = rip = cr2 = cs = None
    addr = size = is_write = is_mmio = value = None
    system_type = suberror = insn = None

    def __init__(self, reason, **fields):
        self.reason = reason
        for k, v in fields.items():
            if k not in _EXIT_FIELDS:
                raise TypeError(f"Exit has no field {k!r}")
            setattr(self, k, v)

    def __repr__(self):
        parts = [getattr(self.reason, "name", str(self.reason))]
        for name in _EXIT_FIELDS:
            v = getattr(self, name)
            if v is not None:
                hexa = type(v) is int and name not in _DECIMAL
                parts.append(f"{name}={v:#x}" if hexa else f"{name}={v!r}")
        return f"Exit({', '.join(parts)})"

    def __eq__(self, other):
        if not isinstance(other, Exit):
            return NotImplemented
        return self.reason == other.reason and \
            all(getattr(self, n) == getattr(other, n) for n in _EXIT_FIELDS)

    __hash__ = None

    @classmethod
    def _from_c(cls, e):
        reason = _REASONS.get(e.reason, e.reason)
        x = cls(reason)
        if reason == ExitReason.GUEST:
            x.code = e.u.guest.code
        elif reason == ExitReason.FAULT:
            f = e.u.fault
            x.vector, x.rip, x.cr2, x.cs = f.vector, f.rip, f.cr2, f.cs
            x.error_code = f.error_code if f.has_error_code else None
        elif reason == ExitReason.IO:
            io = e.u.io
            x.addr, x.size, x.value = io.addr, io.size, io.value
            x.is_write, x.is_mmio = bool(io.is_write), bool(io.is_mmio)
        elif reason == ExitReason.SYSTEM_EVENT:
            x.system_type = e.u.system.type
        elif reason == ExitReason.INTERNAL_ERROR:
            i = e.u.internal
            x.rip, x.suberror = i.rip, i.suberror
            x.insn = bytes(i.insn[:min(i.insn_len, 16)])
        return x


_REASONS = {r.value: r for r in ExitReason}


class VCPU:
    """A vCPU of a VM (VM.create_vcpu). Driven by one thread at a time; kick() may be
    called from any thread. Valid while its VM is open (then every call raises)."""

    def __init__(self, vm, handle):
        self._vm = vm
        self._handle = handle
        self._kicked_for_error = False
        self._stale_kick = False
        self.id = _lib.lib().vmm_vcpu_id(handle)

    def __repr__(self):
        return f"<libvmm.VCPU id={self.id}{'' if self._handle else ' closed'}>"

    @property
    def _h(self):
        if not self._handle:
            raise ValueError("VCPU of a closed VM")
        return self._handle

    # ---- registers ----
    @property
    def regs(self):
        c = S.vmm_regs()
        check(_lib.lib().vmm_vcpu_get_regs(self._h, ctypes.byref(c)), "vmm_vcpu_get_regs")
        return Regs._from_c(c)

    @regs.setter
    def regs(self, value):
        if not isinstance(value, Regs):
            r = self.regs
            for k, v in dict(value).items():
                r[k] = v
            value = r
        c = value._to_c()
        check(_lib.lib().vmm_vcpu_set_regs(self._h, ctypes.byref(c)), "vmm_vcpu_set_regs")

    def set_regs(self, **regs):
        """Changes only the named registers: vcpu.set_regs(rip=entry, rdi=arg)."""
        r = self.regs
        for k, v in regs.items():
            r[k] = v
        self.regs = r

    @property
    def sregs(self):
        """Special registers as the ctypes struct vmm_sregs (a copy; assign it back)."""
        c = S.vmm_sregs()
        check(_lib.lib().vmm_vcpu_get_sregs(self._h, ctypes.byref(c)), "vmm_vcpu_get_sregs")
        return c

    @sregs.setter
    def sregs(self, c):
        check(_lib.lib().vmm_vcpu_set_sregs(self._h, ctypes.byref(c)), "vmm_vcpu_set_sregs")

    @property
    def fpu(self):
        c = S.vmm_fpu()
        check(_lib.lib().vmm_vcpu_get_fpu(self._h, ctypes.byref(c)), "vmm_vcpu_get_fpu")
        return c

    @fpu.setter
    def fpu(self, c):
        check(_lib.lib().vmm_vcpu_set_fpu(self._h, ctypes.byref(c)), "vmm_vcpu_set_fpu")

    def get_msrs(self, indices):
        """{index: value} for the MSR indices given."""
        idx = list(indices)
        n = len(idx)
        ia, va = (ctypes.c_uint32 * n)(*idx), (ctypes.c_uint64 * n)()
        check(_lib.lib().vmm_vcpu_get_msrs(self._h, ia, va, n), "vmm_vcpu_get_msrs")
        return dict(zip(idx, va))

    def set_msrs(self, values):
        """Sets MSRs from {index: value}."""
        items = list(dict(values).items())
        n = len(items)
        ia = (ctypes.c_uint32 * n)(*[k for k, _ in items])
        va = (ctypes.c_uint64 * n)(*[v for _, v in items])
        check(_lib.lib().vmm_vcpu_set_msrs(self._h, ia, va, n), "vmm_vcpu_set_msrs")

    def translate(self, gva):
        """The guest-physical address of guest-virtual `gva` (VmmError EFAULT if not
        mapped)."""
        g = ctypes.c_uint64()
        check(_lib.lib().vmm_vcpu_translate(self._h, gva, ctypes.byref(g)), "vmm_vcpu_translate")
        return g.value

    # ---- long mode ----
    def setup_long_mode(self, entry, stack, *, cpl=0, fault_idt=True, kernel_stack=0,
                        system_area=0, identity_map=0):
        """Puts the vCPU straight into 64-bit mode at `entry` with RSP `stack`, at CPL 0
        or 3; the library writes GDT, TSS, IDT and identity page tables at
        `system_area` (128 KiB of RAM, default GPA 0)."""
        o = S.vmm_long_mode_opts.new(flags=LONG_MODE_FAULT_IDT if fault_idt else 0, cpl=cpl, entry=entry,
                                     stack=stack, kernel_stack=kernel_stack,
                                     system_area=system_area, identity_map=identity_map)
        check(_lib.lib().vmm_vcpu_setup_long_mode(self._h, ctypes.byref(o)),
              "vmm_vcpu_setup_long_mode")

    def set_idt_gate(self, vector, handler, dpl=0):
        check(_lib.lib().vmm_vcpu_set_idt_gate(self._h, vector, handler, dpl),
              "vmm_vcpu_set_idt_gate")

    # ---- running ----
    def kick(self):
        """Makes run() return ExitReason.KICK as soon as possible. Any thread."""
        h = self._handle
        if h:
            _lib.lib().vmm_vcpu_kick(h)

    def run(self, timeout=None):
        """Runs the guest until an exit the caller must see; returns an Exit.

        Bus handlers (Python callbacks) run on this thread meanwhile; if one raises, the
        vCPU is kicked and run() re-raises that exception. With `timeout` (seconds), a
        guest still running then is kicked and TimeoutError raised. Raises VmmError for
        a failed run: EIO for an emulation failure the library cannot complete (its
        ``exit`` attribute then holds the INTERNAL_ERROR exit), EBUSY if another thread
        runs this vCPU."""
        vm = self._vm
        vm._enter_run()
        L = _lib.lib()
        prev = _callback.set_current_vcpu(self)
        timer = None
        fired = []
        try:
            if timeout is not None:
                tlock = threading.Lock()

                def on_timeout():
                    with tlock:  # never kicks once run() has moved on
                        if not fired:
                            fired.append(True)
                            L.vmm_vcpu_kick(self._handle)
                timer = threading.Timer(timeout, on_timeout)
                timer.daemon = True
                timer.start()
            e = S.vmm_exit()
            while True:
                r = L.vmm_vcpu_run(self._handle, ctypes.byref(e))
                err = last_error() if r < 0 else ""
                if r == 0 and e.reason == ExitReason.KICK and self._stale_kick \
                        and not fired and not vm._pending and not vm._closing:
                    # The kick of an earlier timeout or callback error that arrived
                    # after that run had already returned: not for this run.
                    self._stale_kick = False
                    continue
                break
        finally:
            if timer is not None:
                timer.cancel()
                with tlock:
                    fired.append(False)  # from now on the timer does nothing
                fired = [f for f in fired if f]
            _callback.set_current_vcpu(prev)
            vm._leave_run()
        kicked = r == 0 and e.reason == ExitReason.KICK
        if kicked:
            self._stale_kick = False
        elif fired or self._kicked_for_error:
            self._stale_kick = True  # that kick is still pending in the library
        self._kicked_for_error = False
        vm._pending.raise_if_any()
        if r < 0:
            exc = VmmError(-r, err, "vmm_vcpu_run")
            exc.exit = Exit._from_c(e) if r == -errno.EIO else None
            raise exc
        x = Exit._from_c(e)
        if fired and x.reason == ExitReason.KICK:
            raise TimeoutError(f"vCPU {self.id}: guest still running after {timeout} s")
        return x

    def run_until(self, reason=ExitReason.GUEST, timeout=None):
        """run() until an exit with `reason`; returns it."""
        while True:
            x = self.run(timeout)
            if x.reason == reason:
                return x
