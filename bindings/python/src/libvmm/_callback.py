"""Running Python callbacks that C calls, without letting an exception unwind into C.

ctypes acquires the GIL when a C thread (a vCPU in vmm_vcpu_run, the loop thread) calls
a CFUNCTYPE thunk, so callbacks are safe from any thread. A callback that raises has its
exception recorded on the owning VM (``Pending``) and returns a neutral value to C; the
VM re-raises it on the Python side at the next opportunity (VCPU.run returning, or
VM.raise_pending()). If the callback ran on a vCPU thread inside VCPU.run, that vCPU is
kicked, so run() returns promptly and raises it.
"""
import threading

from . import _lib

_tls = threading.local()


def current_vcpu():
    """The VCPU whose run() is on the stack of this thread, or None."""
    return getattr(_tls, "vcpu", None)


def set_current_vcpu(v):
    prev = getattr(_tls, "vcpu", None)
    _tls.vcpu = v
    return prev


class Pending:
    """Exceptions raised by callbacks, waiting to be re-raised on the Python side."""

    def __init__(self):
        self._lock = threading.Lock()
        self._excs = []
        self._children = []

    def record(self, exc):
        with self._lock:
            self._excs.append(exc)
        v = current_vcpu()
        if v is not None and v._handle:
            _lib.lib().vmm_vcpu_kick(v._handle)
            v._kicked_for_error = True

    def adopt(self, other):
        """Also report what `other` (a device's own Pending) records from now on."""
        with self._lock:
            self._children.append(other)

    def take(self):
        with self._lock:
            excs, self._excs = self._excs, []
            children = list(self._children)
        for c in children:
            excs.extend(c.take())
        return excs

    def __bool__(self):
        with self._lock:
            if self._excs:
                return True
            children = list(self._children)
        return any(bool(c) for c in children)

    def raise_if_any(self):
        # Unlocked look first (reading a list's length is atomic under the GIL): this
        # runs after every VCPU.run.
        if not self._excs and not any(c._excs for c in self._children):
            return
        excs = self.take()
        if not excs:
            return
        first = excs[0]
        for other in excs[1:]:
            if hasattr(first, "add_note"):
                first.add_note(f"libvmm: another callback also raised {other!r}")
        raise first


def guard(pending, fn, default):
    """A wrapper of `fn` for a CFUNCTYPE: returns `default` (to C) if fn raises, after
    recording the exception in `pending`. BaseException too (KeyboardInterrupt arriving
    in a callback must not vanish, and must not unwind through C either)."""
    def wrapper(*args):
        try:
            return fn(*args)
        except BaseException as e:  # noqa: B902 - recorded and re-raised later
            try:
                pending.record(e)
            except BaseException:
                pass
            return default
    return wrapper
