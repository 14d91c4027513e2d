//! Errors: the errno a libvmm function returned plus the library's detail message.
use libvmm_sys as sys;
use std::ffi::CStr;
use std::fmt;
use std::os::raw::c_int;

use crate::vcpu::Exit;

/// A libvmm failure: the (positive) errno value and the message `vmm_last_error()` held
/// on the failing thread right after the call, e.g. "ELF image: program header 2
/// extends past end of file".
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    errno: i32,
    message: String,
    exit: Option<Box<Exit>>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error for the negative errno `code` a libvmm call just returned, with the
    /// calling thread's detail message.
    pub(crate) fn last(code: c_int) -> Error {
        // SAFETY: vmm_last_error never returns NULL; the thread-local buffer is valid
        // until the next libvmm call on this thread, and is copied here.
        let message = unsafe { CStr::from_ptr(sys::vmm_last_error()) }.to_string_lossy().into_owned();
        Error { errno: code.wrapping_neg(), message, exit: None }
    }

    /// An error raised by the bindings themselves (no library message).
    pub(crate) fn new(errno: i32, message: impl Into<String>) -> Error {
        Error { errno, message: message.into(), exit: None }
    }

    pub(crate) fn with_exit(mut self, exit: Exit) -> Error {
        self.exit = Some(Box::new(exit));
        self
    }

    /// The errno value, positive (e.g. `libc`'s EINVAL = 22).
    pub fn errno(&self) -> i32 {
        self.errno
    }

    /// The library's detail message (may be empty).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The short description of the errno, from `vmm_strerror`.
    pub fn description(&self) -> String {
        strerror(self.errno)
    }

    /// For a vCPU run that failed with an exit (`EIO` for an emulation failure the
    /// library cannot complete): that exit.
    pub fn exit(&self) -> Option<&Exit> {
        self.exit.as_deref()
    }

    /// The errno as a `std::io::ErrorKind`.
    pub fn kind(&self) -> std::io::ErrorKind {
        std::io::Error::from_raw_os_error(self.errno).kind()
    }
}

/// `vmm_strerror` of a (positive or negative) errno value.
pub fn strerror(errno: i32) -> String {
    // SAFETY: vmm_strerror returns a static string, never NULL.
    unsafe { CStr::from_ptr(sys::vmm_strerror(errno)) }.to_string_lossy().into_owned()
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{} (errno {})", self.description(), self.errno)
        } else {
            write!(f, "{}: {} (errno {})", self.message, self.description(), self.errno)
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("errno", &self.errno)
            .field("description", &self.description())
            .field("message", &self.message)
            .finish()
    }
}

impl std::error::Error for Error {}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> std::io::Error {
        std::io::Error::new(std::io::Error::from_raw_os_error(e.errno).kind(), e.to_string())
    }
}

/// Ok(r) for r >= 0, else the error with the thread's detail message.
#[inline]
pub(crate) fn check(r: c_int) -> Result<c_int> {
    if r < 0 {
        Err(Error::last(r))
    } else {
        Ok(r)
    }
}

/// Standard errno values used by the bindings themselves (Linux x86_64).
pub mod errno {
    pub const ENOENT: i32 = 2;
    pub const EIO: i32 = 5;
    pub const E2BIG: i32 = 7;
    pub const ENOEXEC: i32 = 8;
    pub const EBADF: i32 = 9;
    pub const EAGAIN: i32 = 11;
    pub const ENOMEM: i32 = 12;
    pub const EACCES: i32 = 13;
    pub const EFAULT: i32 = 14;
    pub const EBUSY: i32 = 16;
    pub const EEXIST: i32 = 17;
    pub const ENODEV: i32 = 19;
    pub const EINVAL: i32 = 22;
    pub const ENOSPC: i32 = 28;
    pub const EROFS: i32 = 30;
    pub const EDEADLK: i32 = 35;
    pub const ENOSYS: i32 = 38;
    pub const EPROTO: i32 = 71;
    pub const EBADMSG: i32 = 74;
    pub const ENOTSUP: i32 = 95;
    pub const ETIMEDOUT: i32 = 110;
    pub const ECANCELED: i32 = 125;
}
