//! Shared helpers of the KVM tests. They run real guests built by the main CMake build:
//! LIBVMM_BUILD_DIR names that build directory (test.sh sets it).
#![allow(dead_code)]
use libvmm::{LongMode, Vm};
use std::path::PathBuf;

/// The CMake build directory (with tests/guests/*.elf). Fails (never skips) if unset.
pub fn build_dir() -> PathBuf {
    match std::env::var_os("LIBVMM_BUILD_DIR") {
        Some(d) => PathBuf::from(d),
        None => panic!("set LIBVMM_BUILD_DIR to the CMake build directory (bindings/rust/test.sh does)"),
    }
}

pub fn guest(name: &str) -> PathBuf {
    let p = build_dir().join("tests/guests").join(format!("{}.elf", name));
    assert!(p.exists(), "guest {} not built (run the CMake build first)", p.display());
    p
}

pub fn sandbox_guest(name: &str) -> PathBuf {
    let p = build_dir().join("tests/sandbox_guests").join(format!("{}.elf", name));
    assert!(p.exists(), "sandbox guest {} not built (run the CMake build first)", p.display());
    p
}

pub const RAM: u64 = 32 << 20;
pub const CODE: u64 = 0x20_0000;
pub const DATA: u64 = 0x30_0000;
pub const STACK: u64 = 0x80_0000;

/// addq $1, DATA; movl DATA, %eax; outl %eax, $0xf4; jmp back: each run returns
/// Exit::Guest(n) with n the count so far.
pub const COUNTER: &[u8] = &[
    0x48, 0x83, 0x04, 0x25, 0x00, 0x00, 0x30, 0x00, 0x01, // addq $1, 0x300000
    0x8b, 0x04, 0x25, 0x00, 0x00, 0x30, 0x00, // mov 0x300000, %eax
    0xe7, 0xf4, // out %eax, $0xf4
    0xeb, 0xec, // jmp counter
];
pub const SPIN: &[u8] = &[0xeb, 0xfe];
pub const UD2: &[u8] = &[0x0f, 0x0b];

/// A VM with RAM and `code` at CODE.
pub fn vm_with_code(code: &[u8]) -> Vm {
    let mut vm = Vm::new().expect("Vm::new");
    vm.add_ram(0, RAM).expect("add_ram");
    vm.memory().write(CODE, code).expect("write code");
    vm
}

pub fn long_mode(cpl: u32, entry: u64) -> LongMode {
    LongMode { cpl, entry, stack: STACK, ..Default::default() }
}

pub fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0xedb8_8320 } else { c >> 1 };
        }
    }
    !c
}

/// Open file descriptors of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Resident set size in bytes.
pub fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = s.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}
