//! Function sandboxes: call functions of a guest program (built with sdk/guest) in a VM
//! that is reset to a snapshot after every call.
use crate::error::{check, errno, Error, Result};
use crate::panic;
use crate::vm::path_cstring;
use libvmm_sys as sys;
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::time::Duration;

/// What a host function sees of the sandbox while the guest waits on it: checked access
/// to guest memory (guest pointers among the arguments are guest addresses).
pub struct HostCall {
    sb: *mut sys::vmm_sandbox,
}

impl HostCall {
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        // SAFETY: called on the sandbox's calling thread, during the call.
        check(unsafe { sys::vmm_sandbox_read(self.sb, addr, buf.as_mut_ptr() as *mut c_void, buf.len()) }).map(|_| ())
    }

    pub fn read_vec(&self, addr: u64, len: usize) -> Result<Vec<u8>> {
        let mut v = vec![0u8; len];
        self.read(addr, &mut v)?;
        Ok(v)
    }

    pub fn write(&self, addr: u64, data: &[u8]) -> Result<()> {
        // SAFETY: as read.
        check(unsafe { sys::vmm_sandbox_write(self.sb, addr, data.as_ptr() as *const c_void, data.len()) }).map(|_| ())
    }
}

/// A host function: gets the call context and the guest's arguments; returns the value
/// the guest sees, or Err(errno) (positive) to end the whole call with that error.
type HostFn = Box<dyn FnMut(&HostCall, &[u64]) -> std::result::Result<u64, i32> + Send>;
type OutputFn = Box<dyn FnMut(&[u8]) + Send>;

struct HostEntry {
    id: u32,
    name: Option<CString>,
    f: HostFn,
}

unsafe extern "C" fn host_trampoline(ctx: *mut c_void, sb: *mut sys::vmm_sandbox, args: *const u64, nargs: u32,
                                     ret: *mut u64) -> c_int {
    // SAFETY: ctx is a HostEntry allocated by build() and freed in Drop, called only on
    // the thread of the (non-overlapping) sandbox call; args holds nargs values.
    let entry = &mut *(ctx as *mut HostEntry);
    let args = if nargs == 0 { &[][..] } else { std::slice::from_raw_parts(args, nargs as usize) };
    let call = HostCall { sb };
    panic::guard(-errno::ECANCELED, || match (entry.f)(&call, args) {
        Ok(v) => {
            *ret = v;
            0
        }
        Err(e) => -(e.abs().max(1)),
    })
}

unsafe extern "C" fn output_trampoline(ctx: *mut c_void, data: *const c_char, len: usize) {
    // SAFETY: ctx is the OutputFn allocated by build(); data holds len bytes.
    let f = &mut *(ctx as *mut OutputFn);
    let bytes = if len == 0 { &[][..] } else { std::slice::from_raw_parts(data as *const u8, len) };
    panic::guard((), || f(bytes));
}

/// Builds a `Sandbox` (`vmm_sandbox_opts`).
#[derive(Default)]
pub struct SandboxBuilder {
    elf: Option<Vec<u8>>,
    elf_path: Option<PathBuf>,
    mem_size: u64,
    io_size: u64,
    deadline: Option<Duration>,
    init_deadline: Option<Duration>,
    flags: u32,
    host: Vec<HostEntry>,
    output: Option<OutputFn>,
}

fn duration_ns(d: Option<Duration>) -> u64 {
    d.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)).unwrap_or(0)
}

impl SandboxBuilder {
    /// The guest program from a file.
    pub fn elf_path(mut self, path: impl AsRef<Path>) -> Self {
        self.elf_path = Some(path.as_ref().to_path_buf());
        self
    }

    /// The guest program from memory (copied by the library).
    pub fn elf(mut self, image: &[u8]) -> Self {
        self.elf = Some(image.to_vec());
        self
    }

    /// Guest RAM in bytes (default 16 MiB).
    pub fn mem_size(mut self, bytes: u64) -> Self {
        self.mem_size = bytes;
        self
    }

    /// The I/O area for call buffers (default 1 MiB).
    pub fn io_size(mut self, bytes: u64) -> Self {
        self.io_size = bytes;
        self
    }

    /// Default time limit of each call.
    pub fn deadline(mut self, d: Duration) -> Self {
        self.deadline = Some(d);
        self
    }

    pub fn init_deadline(mut self, d: Duration) -> Self {
        self.init_deadline = Some(d);
        self
    }

    /// VMM_SANDBOX_NO_RESET: each call continues from the state the last one left.
    pub fn no_reset(mut self) -> Self {
        self.flags |= sys::VMM_SANDBOX_NO_RESET;
        self
    }

    /// VMM_SANDBOX_RING0: run the guest at CPL 0.
    pub fn ring0(mut self) -> Self {
        self.flags |= sys::VMM_SANDBOX_RING0;
        self
    }

    /// A host function the guest calls by `id` (and by `name`, if given). Runs on the
    /// thread that calls the sandbox; a panic ends the call with ECANCELED and resumes
    /// from `Sandbox::call`.
    pub fn host_fn<F>(mut self, id: u32, name: Option<&str>, f: F) -> Self
    where
        F: FnMut(&HostCall, &[u64]) -> std::result::Result<u64, i32> + Send + 'static,
    {
        let name = name.map(|n| CString::new(n).expect("host function name contains NUL"));
        self.host.push(HostEntry { id, name, f: Box::new(f) });
        self
    }

    /// Receives what the guest prints (vmm_guest_write), on the calling thread.
    pub fn output<F: FnMut(&[u8]) + Send + 'static>(mut self, f: F) -> Self {
        self.output = Some(Box::new(f));
        self
    }

    /// Loads the program, runs its init function and takes the snapshot.
    pub fn build(self) -> Result<Sandbox> {
        let path = self.elf_path.as_deref().map(path_cstring).transpose()?;
        // Callback state lives in raw allocations, owned by the Sandbox, which never
        // touches them while the C library may call into them.
        let entries: Vec<*mut HostEntry> = self.host.into_iter().map(|e| Box::into_raw(Box::new(e))).collect();
        let output: Option<*mut OutputFn> = self.output.map(|f| Box::into_raw(Box::new(f)));
        let mut sb = Sandbox { raw: None, entries, output };
        let funcs: Vec<sys::vmm_sandbox_host_func> = sb
            .entries
            .iter()
            .map(|&e| {
                // SAFETY: e was just allocated and is not shared yet.
                let entry = unsafe { &*e };
                sys::vmm_sandbox_host_func {
                    id: entry.id,
                    name: entry.name.as_ref().map(|n| n.as_ptr()).unwrap_or(std::ptr::null()),
                    fn_: Some(host_trampoline),
                    ctx: e as *mut c_void,
                }
            })
            .collect();
        let mut o = sys::vmm_sandbox_opts::default();
        o.flags = self.flags;
        if let Some(img) = &self.elf {
            o.elf = img.as_ptr() as *const c_void;
            o.elf_size = img.len();
        }
        o.elf_path = path.as_ref().map(|p| p.as_ptr()).unwrap_or(std::ptr::null());
        o.mem_size = self.mem_size;
        o.io_size = self.io_size;
        o.deadline_ns = duration_ns(self.deadline);
        o.init_deadline_ns = duration_ns(self.init_deadline);
        o.host_funcs = funcs.as_ptr();
        o.nr_host_funcs = funcs.len();
        if let Some(out) = sb.output {
            o.output = Some(output_trampoline);
            o.output_ctx = out as *mut c_void;
        }
        let mut raw = std::ptr::null_mut();
        // SAFETY: all pointers are valid for the call; the library copies the host
        // function table and names; ctx pointers stay valid until Sandbox::drop.
        let r = unsafe { sys::vmm_sandbox_create(&mut raw, &o) };
        panic::resume();
        check(r)?;
        sb.raw = NonNull::new(raw);
        Ok(sb)
    }
}

/// What `Sandbox::call_with` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallResult {
    /// The guest function's return value.
    pub ret: u64,
    /// Bytes the guest produced in each output buffer (first `n_out` entries).
    pub out_lens: [usize; 8],
    pub n_out: usize,
}

/// Counters since creation.
pub type SandboxStats = sys::vmm_sandbox_stats;

/// A function sandbox (`vmm_sandbox`). sandbox.h: used by one thread at a time, any
/// number of sandboxes on different threads: `Send`, not `Sync`; calls take `&mut self`.
pub struct Sandbox {
    raw: Option<NonNull<sys::vmm_sandbox>>,
    entries: Vec<*mut HostEntry>,
    output: Option<*mut OutputFn>,
}

// SAFETY: see the type; host functions and the output closure are Send.
unsafe impl Send for Sandbox {}

/// A NUL-terminated copy of a short name on the stack (no allocation per call).
fn with_cname<R>(name: &str, f: impl FnOnce(&CStr) -> Result<R>) -> Result<R> {
    let bytes = name.as_bytes();
    let bad = || Error::new(errno::EINVAL, format!("bad function name {:?}", name));
    if bytes.len() < 128 {
        let mut buf = [0u8; 128];
        buf[..bytes.len()].copy_from_slice(bytes);
        let c = CStr::from_bytes_with_nul(&buf[..=bytes.len()]).map_err(|_| bad())?;
        f(c)
    } else {
        let c = CString::new(name).map_err(|_| bad())?;
        f(&c)
    }
}

impl Sandbox {
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder::default()
    }

    pub fn as_raw(&self) -> *mut sys::vmm_sandbox {
        self.raw.expect("sandbox").as_ptr()
    }

    /// Calls the exported guest function `name` with up to 6 integer arguments.
    pub fn call(&mut self, name: &str, args: &[u64]) -> Result<u64> {
        with_cname(name, |c| self.call_cstr(c, args))
    }

    /// `call` with a prepared name.
    pub fn call_cstr(&mut self, name: &CStr, args: &[u64]) -> Result<u64> {
        let mut ret = 0u64;
        // SAFETY: valid pointers; &mut self: no overlapping call.
        let r = unsafe {
            sys::vmm_sandbox_call(self.as_raw(), name.as_ptr(), args.as_ptr(), args.len(), std::ptr::null(), &mut ret)
        };
        panic::resume();
        check(r)?;
        Ok(ret)
    }

    /// A call with input buffers (copied in) and output buffers (the guest's output
    /// copied back), and optionally its own deadline.
    pub fn call_with(&mut self, name: &str, args: &[u64], inputs: &[&[u8]], outputs: &mut [&mut [u8]],
                     deadline: Option<Duration>) -> Result<CallResult> {
        if inputs.len() > 8 || outputs.len() > 8 {
            return Err(Error::new(errno::E2BIG, "at most 8 input and 8 output buffers"));
        }
        let mut ins = [sys::vmm_sandbox_in::default(); 8];
        for (i, b) in inputs.iter().enumerate() {
            ins[i] = sys::vmm_sandbox_in { data: b.as_ptr() as *const c_void, len: b.len() };
        }
        let mut outs = [sys::vmm_sandbox_out::default(); 8];
        for (i, b) in outputs.iter_mut().enumerate() {
            outs[i] = sys::vmm_sandbox_out { data: b.as_mut_ptr() as *mut c_void, cap: b.len(), len: 0 };
        }
        let mut o = sys::vmm_sandbox_call_opts::default();
        o.in_ = ins.as_ptr();
        o.nr_in = inputs.len();
        o.out = outs.as_mut_ptr();
        o.nr_out = outputs.len();
        o.deadline_ns = match deadline {
            None => 0,
            Some(d) => duration_ns(Some(d)),
        };
        let mut ret = 0u64;
        with_cname(name, |c| {
            // SAFETY: every buffer outlives the call; &mut self: no overlapping call.
            let r = unsafe { sys::vmm_sandbox_call(self.as_raw(), c.as_ptr(), args.as_ptr(), args.len(), &o, &mut ret) };
            panic::resume();
            check(r).map(|_| ())
        })?;
        let mut res = CallResult { ret, out_lens: [0; 8], n_out: outputs.len() };
        for (i, out) in outs.iter().take(outputs.len()).enumerate() {
            res.out_lens[i] = out.len;
        }
        Ok(res)
    }

    /// Resets to the snapshot now.
    pub fn reset(&mut self) -> Result<()> {
        // SAFETY: &mut self.
        check(unsafe { sys::vmm_sandbox_reset(self.as_raw()) }).map(|_| ())
    }

    /// The value of symbol `name` in the guest program.
    pub fn symbol(&self, name: &str) -> Result<u64> {
        let c = CString::new(name).map_err(|_| Error::new(errno::EINVAL, "name contains NUL"))?;
        let mut v = 0;
        // SAFETY: valid pointers.
        check(unsafe { sys::vmm_sandbox_symbol(self.as_raw(), c.as_ptr(), &mut v) })?;
        Ok(v)
    }

    /// Reads guest memory (e.g. the state the last call left).
    pub fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<()> {
        HostCall { sb: self.as_raw() }.read(addr, buf)
    }

    pub fn write(&mut self, addr: u64, data: &[u8]) -> Result<()> {
        HostCall { sb: self.as_raw() }.write(addr, data)
    }

    pub fn stats(&self) -> Result<SandboxStats> {
        let mut s = SandboxStats::default();
        // SAFETY: valid out pointer.
        check(unsafe { sys::vmm_sandbox_get_stats(self.as_raw(), &mut s) })?;
        Ok(s)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(raw) = self.raw.take() {
            // SAFETY: no call in progress (&mut self).
            unsafe { sys::vmm_sandbox_destroy(raw.as_ptr()) };
        }
        // SAFETY: the library no longer calls them (destroyed, or never created).
        for &e in &self.entries {
            drop(unsafe { Box::from_raw(e) });
        }
        if let Some(o) = self.output.take() {
            drop(unsafe { Box::from_raw(o) });
        }
    }
}
