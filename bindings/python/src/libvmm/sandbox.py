"""Function sandboxes (include/libvmm/sandbox.h): call exported functions of a guest
program (built with the guest SDK, sdk/guest) in a small VM that is reset to a snapshot
after every call.

    with libvmm.Sandbox("funcs.elf") as sb:
        print(sb.call("add", 2, 3))                       # 5
        ret, (out,) = sb.call("upper", inputs=[b"abc"], outputs=[64])
"""
import ctypes
import errno
import os

from . import _callback, _lib
from . import _structs as S
from .errors import VmmError, last_error
from .vcpu import Regs

NO_RESET = 1 << 0
RING0 = 1 << 1
CALL_KEEP_STATE = 1 << 0
MAX_ARGS = 6
MAX_BUFS = 8
_NO_DEADLINE = (1 << 64) - 1


def _ns(seconds):
    return 0 if not seconds else max(1, int(seconds * 1e9))


class Sandbox:
    """A sandbox around one guest program (`elf`: path or bytes-like image).

    host_functions: {name: fn}, {id: fn}, or (id, name, fn) tuples; a host function is
    called as fn(sandbox, *args) on the thread of call() and returns the integer the
    guest sees (None = 0). If it raises, the guest's call ends (the sandbox is reset) and
    call() re-raises that exception (an OSError's errno is passed to the library).
    output: a callable receiving the bytes the guest writes with vmm_guest_write.
    deadline / init_deadline: seconds (None = no limit); a call past its deadline raises
    VmmError(ETIMEDOUT). A sandbox is used by one thread at a time."""

    def __init__(self, elf, *, mem_size=0, io_size=0, deadline=None, init_deadline=None,
                 host_functions=None, output=None, no_reset=False, ring0=False,
                 kvm_path=None, kick_signal=0):
        L = _lib.lib()
        create = _lib.need("vmm_sandbox_create", "Sandbox")
        self._handle = None
        self._pending = _callback.Pending()
        self._keep = []
        o = S.vmm_sandbox_opts.new(flags=(NO_RESET if no_reset else 0) | (RING0 if ring0 else 0),
                                   mem_size=mem_size, io_size=io_size,
                                   deadline_ns=_ns(deadline), init_deadline_ns=_ns(init_deadline))
        if isinstance(elf, (str, os.PathLike)):
            o.elf_path = os.fsencode(elf)
        else:
            image = bytes(elf)
            self._keep.append(image)
            o.elf = ctypes.cast(ctypes.c_char_p(image), ctypes.c_void_p)
            o.elf_size = len(image)
        funcs = self._host_funcs(host_functions)
        if funcs:
            arr = (S.vmm_sandbox_host_func * len(funcs))(*funcs)
            self._keep.append(arr)
            o.host_funcs = arr
            o.nr_host_funcs = len(funcs)
        if output is not None:
            def out(_ctx, data, n):
                output(ctypes.string_at(data, n))
            thunk = S.SANDBOX_OUTPUT_FN(_callback.guard(self._pending, out, None))
            self._keep.append(thunk)
            o.output = thunk
        vo = S.vmm_vm_opts.new(kvm_path=os.fsencode(kvm_path) if kvm_path else None,
                               kick_signal=kick_signal)
        o.vm_opts = ctypes.pointer(vo)
        h = ctypes.c_void_p()
        r = create(ctypes.byref(h), ctypes.byref(o))
        if r < 0:
            self._raise(r, "vmm_sandbox_create")
        self._handle = h.value
        self._L = L
        self._args = (ctypes.c_uint64 * MAX_ARGS)()
        self._ret = ctypes.c_uint64()
        self._names = {}
        self._keep_state_opts = ctypes.byref(S.vmm_sandbox_call_opts.new(flags=CALL_KEEP_STATE))

    def _host_funcs(self, spec):
        if not spec:
            return []
        if isinstance(spec, dict):
            items = []
            for i, (k, fn) in enumerate(spec.items(), 1):
                items.append((k, None, fn) if isinstance(k, int) else (i, k, fn))
        else:
            items = [tuple(t) for t in spec]
        out = []
        for fid, name, fn in items:
            def call(_ctx, _sb, args, nargs, ret, _fn=fn):
                try:
                    v = _fn(self, *[args[i] for i in range(nargs)])
                except OSError as e:
                    self._pending.record(e)
                    return -(e.errno or errno.EIO)
                ret[0] = 0 if v is None else int(v) & ((1 << 64) - 1)
                return 0
            thunk = S.SANDBOX_HOST_FN(_callback.guard(self._pending, call, -errno.ECANCELED))
            self._keep.append(thunk)
            hf = S.vmm_sandbox_host_func(id=fid, name=name.encode() if name else None, fn=thunk)
            out.append(hf)
        return out

    def _raise(self, r, function):
        detail = last_error()
        excs = self._pending.take()
        err = VmmError(-r, detail, function)
        if excs:
            raise excs[0] from err
        raise err

    # ---- lifetime ----
    def close(self):
        h, self._handle = self._handle, None
        if h:
            _lib.lib().vmm_sandbox_destroy(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _h(self):
        if not self._handle:
            raise ValueError("sandbox is closed")
        return self._handle

    # ---- calls ----
    def call(self, fn, *args, inputs=(), outputs=None, deadline=None, keep_state=False):
        """Calls guest function `fn` with up to 6 integer arguments; returns its result.
        inputs: bytes-like buffers copied into the guest (vmm_guest_in). outputs: the
        capacities of output buffers (vmm_guest_out); with outputs, returns
        (result, [bytes, ...]). deadline: seconds for this call (None = the sandbox's;
        0 = none). keep_state: continue from the state the last call left."""
        h = self._h()
        name = self._names.get(fn)
        if name is None:
            name = self._names[fn] = fn.encode()
        n = len(args)
        if n > MAX_ARGS:
            raise ValueError(f"at most {MAX_ARGS} arguments")
        a = self._args
        for i, v in enumerate(args):
            a[i] = v & 0xffffffffffffffff
        opts = None
        outs = None
        if inputs or outputs or deadline is not None:
            opts, outs, keep = self._call_opts(inputs, outputs, deadline, keep_state)
        elif keep_state:
            opts = self._keep_state_opts
        r = self._L.vmm_sandbox_call(h, name, a, n, opts, self._ret)
        if r < 0:
            self._raise(r, f"vmm_sandbox_call({fn})")
        if self._pending:
            self._pending.raise_if_any()
        if outputs is None:
            return self._ret.value
        return self._ret.value, [ctypes.string_at(o.data, o.len) for o in outs]

    def _call_opts(self, inputs, outputs, deadline, keep_state):
        keep = []
        o = S.vmm_sandbox_call_opts.new(flags=CALL_KEEP_STATE if keep_state else 0)
        if deadline is not None:
            o.deadline_ns = _NO_DEADLINE if deadline == 0 else _ns(deadline)
        if inputs:
            ins = (S.vmm_sandbox_in * len(inputs))()
            for i, b in enumerate(inputs):
                data = bytes(b)
                keep.append(data)
                ins[i].data = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p)
                ins[i].len = len(data)
            o.__setattr__("in", ins)
            o.nr_in = len(inputs)
            keep.append(ins)
        outs = (S.vmm_sandbox_out * len(outputs or ()))()
        for i, cap in enumerate(outputs or ()):
            buf = ctypes.create_string_buffer(max(int(cap), 1))
            keep.append(buf)
            outs[i].data = ctypes.cast(buf, ctypes.c_void_p)
            outs[i].cap = int(cap)
        if outputs:
            o.out = outs
            o.nr_out = len(outputs)
        keep.append(outs)
        return ctypes.byref(o), outs, (keep, o)

    def reset(self):
        """Resets the guest to its snapshot now (call() does it by itself)."""
        r = self._L.vmm_sandbox_reset(self._h())
        if r < 0:
            self._raise(r, "vmm_sandbox_reset")

    # ---- inspection ----
    def symbol(self, name):
        v = ctypes.c_uint64()
        r = self._L.vmm_sandbox_symbol(self._h(), name.encode(), ctypes.byref(v))
        if r < 0:
            self._raise(r, "vmm_sandbox_symbol")
        return v.value

    def read(self, addr, length):
        """Guest memory (checked: the program's memory from 1 MiB up; else EFAULT)."""
        buf = ctypes.create_string_buffer(length)
        r = self._L.vmm_sandbox_read(self._h(), addr, buf, length)
        if r < 0:
            raise VmmError(-r, last_error(), "vmm_sandbox_read")
        return buf.raw

    def write(self, addr, data):
        data = bytes(data)
        r = self._L.vmm_sandbox_write(self._h(), addr, data, len(data))
        if r < 0:
            raise VmmError(-r, last_error(), "vmm_sandbox_write")

    @property
    def regs(self):
        """The vCPU's registers (e.g. after a fault)."""
        L = self._L
        c = S.vmm_regs()
        r = L.vmm_vcpu_get_regs(L.vmm_sandbox_vcpu(self._h()), ctypes.byref(c))
        if r < 0:
            raise VmmError(-r, last_error(), "vmm_vcpu_get_regs")
        return Regs._from_c(c)

    def stats(self):
        st = S.vmm_sandbox_stats.new()
        r = self._L.vmm_sandbox_get_stats(self._h(), ctypes.byref(st))
        if r < 0:
            raise VmmError(-r, last_error(), "vmm_sandbox_get_stats")
        return {n: getattr(st, n) for n, _ in S.vmm_sandbox_stats._fields_ if n != "size"}
