//! The event loop devices do their I/O on (`vmm_loop`).
use crate::error::{check, errno, Error, Result};
use crate::panic::{self, Interrupt};
use crate::vm::lock;
use libvmm_sys as sys;
use std::os::unix::io::RawFd;
use std::ptr::NonNull;
use std::sync::{Condvar, Mutex};

#[derive(Default)]
struct State {
    running: bool,
    stop_requested: bool,
    /// Threads that need the loop not to run (e.g. to destroy a device on it).
    pausers: usize,
}

/// An event loop. Run it on a thread of its own with `run()` (e.g. in
/// `std::thread::scope`); `stop()` from any thread makes `run()` return.
///
/// Thread safety (loop.h): one thread runs the loop at a time (enforced: a second `run`
/// gets -EBUSY); stop may be called from any thread. Devices attached to the loop must
/// be destroyed while it does not run: dropping a `VirtioMmio` pauses the loop (its
/// `run()` keeps going afterwards), so `Loop` is `Send + Sync`.
pub struct Loop {
    raw: NonNull<sys::vmm_loop>,
    state: Mutex<State>,
    cond: Condvar,
}

// SAFETY: see the type.
unsafe impl Send for Loop {}
unsafe impl Sync for Loop {}

/// Keeps the loop from running while alive (see `Loop::pause`).
pub struct Paused<'a> {
    lp: &'a Loop,
}

impl<'a> Paused<'a> {
    pub(crate) fn event_loop(&self) -> &'a Loop {
        self.lp
    }
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        let mut st = lock(&self.lp.state);
        st.pausers -= 1;
        self.lp.cond.notify_all();
    }
}

impl Loop {
    pub fn new() -> Result<Loop> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: valid out pointer.
        check(unsafe { sys::vmm_loop_create(&mut raw) })?;
        Ok(Loop { raw: NonNull::new(raw).expect("NULL loop"), state: Mutex::default(), cond: Condvar::new() })
    }

    pub fn as_raw(&self) -> *mut sys::vmm_loop {
        self.raw.as_ptr()
    }

    /// The epoll fd, for integration into another event loop.
    pub fn fd(&self) -> RawFd {
        // SAFETY: the loop is alive.
        unsafe { sys::vmm_loop_fd(self.as_raw()) }
    }

    /// Dispatches callbacks until `stop()`. A panic in a device callback (e.g. a
    /// console output closure) stops the loop and resumes here.
    pub fn run(&self) -> Result<()> {
        let mut st = lock(&self.state);
        if st.running {
            return Err(Error::new(errno::EBUSY, "the loop is already running on another thread"));
        }
        loop {
            while st.pausers > 0 {
                st = self.cond.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            if st.stop_requested {
                st.stop_requested = false;
                return Ok(());
            }
            st.running = true;
            drop(st);
            let r = {
                let _scope = panic::Scope::enter(Interrupt::Loop(self.as_raw()));
                // SAFETY: only this thread runs the loop (`running`).
                unsafe { sys::vmm_loop_run(self.as_raw()) }
            };
            st = lock(&self.state);
            st.running = false;
            self.cond.notify_all();
            if r < 0 {
                drop(st);
                panic::resume();
                return Err(Error::last(r));
            }
            drop(st);
            panic::resume();
            st = lock(&self.state);
            // A stop() returns at the top of the loop; a pause() runs again.
        }
    }

    /// Runs ready callbacks once, waiting up to `timeout_ms` (-1 = forever). Returns
    /// how many ran.
    pub fn run_once(&self, timeout_ms: i32) -> Result<usize> {
        let mut st = lock(&self.state);
        while st.pausers > 0 {
            st = self.cond.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        if st.running {
            return Err(Error::new(errno::EBUSY, "the loop is already running on another thread"));
        }
        st.running = true;
        drop(st);
        let r = {
            let _scope = panic::Scope::enter(Interrupt::Loop(self.as_raw()));
            // SAFETY: only this thread runs the loop.
            unsafe { sys::vmm_loop_run_once(self.as_raw(), timeout_ms) }
        };
        let mut st = lock(&self.state);
        st.running = false;
        self.cond.notify_all();
        drop(st);
        panic::resume();
        check(r).map(|n| n as usize)
    }

    /// Makes `run()` return after the current iteration (or at once, if it starts
    /// later). Any thread.
    pub fn stop(&self) {
        let mut st = lock(&self.state);
        st.stop_requested = true;
        // SAFETY: any thread.
        unsafe { sys::vmm_loop_stop(self.as_raw()) };
    }

    /// Stops the loop's dispatching until the guard is dropped; a `run()` in progress
    /// continues then. Must not be called from a loop callback (it would wait forever).
    pub fn pause(&self) -> Paused<'_> {
        let mut st = lock(&self.state);
        st.pausers += 1;
        while st.running {
            // SAFETY: any thread; the stop is consumed by the run it ends.
            unsafe { sys::vmm_loop_stop(self.as_raw()) };
            st = self.cond.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        Paused { lp: self }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        // SAFETY: &mut self: not running; nothing attached borrows it any more.
        unsafe { sys::vmm_loop_destroy(self.raw.as_ptr()) }
    }
}
