"""VmmError: a libvmm call failed.

libvmm functions return 0 or a negative errno and leave a human-readable reason in a
thread-local buffer (vmm_last_error(), lib/core/error.c). The reason is read right after
the failing call, on the same thread, before any other libvmm call can replace it.
"""
import errno as _errno

from ._lib import lib


class VmmError(OSError):
    """A libvmm call failed. ``errno`` is the positive errno value (e.g. errno.EEXIST),
    ``strerror`` libvmm's short description of it, ``detail`` the library's message
    for this failure (may be empty), ``function`` the C function that failed."""

    def __init__(self, err, detail="", function=None):
        err = abs(int(err))
        try:
            text = lib().vmm_strerror(-err).decode()
        except OSError:
            text = _errno.errorcode.get(err, "unknown error")
        super().__init__(err, text)
        self.detail = detail or ""
        self.function = function

    def __str__(self):
        name = _errno.errorcode.get(self.errno, str(self.errno))
        s = f"[{name}] {self.strerror}"
        if self.function:
            s = f"{self.function}: {s}"
        if self.detail:
            s += f": {self.detail}"
        return s

    def __reduce__(self):
        return (type(self), (self.errno, self.detail, self.function))


def last_error():
    """The detail message of the last libvmm failure on this thread ("" if none)."""
    return lib().vmm_last_error().decode(errors="replace")


def check(r, function=None):
    """Raise VmmError for a negative return value; return it otherwise."""
    if r < 0:
        raise VmmError(-r, last_error(), function)
    return r

