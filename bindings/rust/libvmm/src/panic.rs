//! Panics in Rust callbacks never unwind into C.
//!
//! Every trampoline the C library calls runs the Rust closure under `catch_unwind`. A
//! panic is stored in a thread-local slot, the C call that is running on this thread is
//! asked to return early (the vCPU is kicked, the loop is stopped), the trampoline
//! returns a neutral value, and the Rust wrapper that made the C call re-raises the panic
//! with `resume_unwind` once C has returned. Callbacks on threads with no such wrapper
//! (e.g. a library-owned thread) only print the panic message (the panic hook does).
use libvmm_sys as sys;
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

/// What to interrupt on this thread when a callback panics.
#[derive(Clone, Copy)]
pub(crate) enum Interrupt {
    None,
    Vcpu(*mut sys::vmm_vcpu),
    Loop(*mut sys::vmm_loop),
}

thread_local! {
    static PANIC: RefCell<Option<Box<dyn Any + Send + 'static>>> = RefCell::new(None);
    static INTERRUPT: Cell<Interrupt> = Cell::new(Interrupt::None);
}

/// Sets what a panicking callback interrupts, for the duration of a C call.
pub(crate) struct Scope(Interrupt);

impl Scope {
    #[inline]
    pub(crate) fn enter(what: Interrupt) -> Scope {
        Scope(INTERRUPT.with(|c| c.replace(what)))
    }
}

impl Drop for Scope {
    #[inline]
    fn drop(&mut self) {
        let prev = self.0;
        INTERRUPT.with(|c| c.set(prev));
    }
}

/// Runs `f` for C: a panic becomes `default`, to be re-raised by `resume()`.
#[inline]
pub(crate) fn guard<R>(default: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            PANIC.with(|p| {
                let mut p = p.borrow_mut();
                if p.is_none() {
                    *p = Some(payload);
                }
            });
            // SAFETY: the pointers were set by a wrapper that is inside a C call on
            // this thread with that vCPU or loop, so they are alive.
            match INTERRUPT.with(|c| c.get()) {
                Interrupt::Vcpu(v) => unsafe { sys::vmm_vcpu_kick(v) },
                Interrupt::Loop(l) => unsafe { sys::vmm_loop_stop(l) },
                Interrupt::None => {}
            }
            default
        }
    }
}

/// Re-raises a panic a callback on this thread caught during the last C call.
#[inline]
pub(crate) fn resume() {
    if let Some(p) = PANIC.with(|p| p.borrow_mut().take()) {
        resume_unwind(p);
    }
}
