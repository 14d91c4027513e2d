//! Safe Rust bindings of libvmm, an embeddable VMM library on Linux KVM (x86_64).
//!
//! The C API is the contract (`include/libvmm/*.h`); these types follow it:
//! - RAII: `Vm`, `Loop`, `Cpuid`, `Snapshot`, `Sandbox`, devices are destroyed on drop;
//!   `Memory`, `Bus`, `Irq`, `Vcpu` and `VirtioMmio` borrow their VM, so they cannot
//!   outlive it.
//! - Errors are `Result<T, Error>`: the errno the call returned and the library's detail
//!   message (`vmm_last_error()`).
//! - `Send`/`Sync` follow each header's threading notes: `Vm`, `Memory`, `Bus`, `Irq`,
//!   `Loop`, `Snapshot` are shared between threads; a `Vcpu` is driven by one thread at
//!   a time (`Send`, not `Sync`; `Kicker` is its any-thread part); a `Sandbox` is `Send`.
//! - Callbacks (bus handlers, console output, host functions) are Rust closures; a
//!   panic never unwinds into C: it is caught, the running vCPU or loop is interrupted,
//!   and the panic resumes from the Rust call that was running the guest.
//!
//! ```no_run
//! use libvmm::{Vm, LongMode, Exit, Space};
//! let mut vm = Vm::new()?;
//! vm.add_ram(0, 32 << 20)?;
//! vm.bus().on_write(Space::Pio, 0xe9, 1, |_, _, v| print!("{}", v as u8 as char))?;
//! let elf = vm.load_elf_file("hello.elf")?;
//! let mut cpu = vm.create_vcpu(0)?;
//! cpu.setup_long_mode(&LongMode { cpl: 3, entry: elf.entry, stack: 0x800000, ..Default::default() })?;
//! if let Exit::Guest(code) = cpu.run()? {
//!     println!("exit code {:#x}", code);
//! }
//! # Ok::<(), libvmm::Error>(())
//! ```

#![allow(clippy::field_reassign_with_default, clippy::derivable_impls)]

mod bus;
mod error;
mod event_loop;
mod irq;
mod memory;
mod panic;
mod sandbox;
mod snapshot;
mod vcpu;
mod virtio;
mod vm;

pub use libvmm_sys as sys;

pub use bus::{Bus, BusHandler, FnHandler, Space, StandaloneBus};
pub use error::{errno, strerror, Error, Result};
pub use event_loop::{Loop, Paused};
pub use irq::{msi_for, Irq};
pub use memory::{Backing, ElfInfo, Memory, MemoryMap, Region, RegionInfo};
pub use sandbox::{CallResult, HostCall, Sandbox, SandboxBuilder, SandboxStats};
pub use snapshot::{MemMode, ResetStats, Snapshot};
pub use vcpu::{Cpuid, CpuidEntry, DTable, Exit, Fault, Fpu, Io, Kicker, LongMode, Regs, Segment, Sregs, Vcpu};
pub use virtio::{MmioStats, VirtioDevice, VirtioMmio};
pub use vm::{IrqChip, Vm, VmOptions};

/// The library's version, "MAJOR.MINOR.PATCH".
pub fn version() -> String {
    // SAFETY: a static string.
    unsafe { std::ffi::CStr::from_ptr(sys::vmm_version()) }.to_string_lossy().into_owned()
}

macro_rules! debug_raw {
    ($($t:ty => $name:literal),* $(,)?) => { $(
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_tuple($name).field(&self.as_raw()).finish()
            }
        }
    )* };
}
debug_raw! {
    Vcpu<'_> => "Vcpu", Memory<'_> => "Memory", Bus<'_> => "Bus", Irq<'_> => "Irq",
    Loop => "Loop", Cpuid => "Cpuid", VirtioDevice => "VirtioDevice", VirtioMmio<'_> => "VirtioMmio",
    Snapshot => "Snapshot", Sandbox => "Sandbox",
}
