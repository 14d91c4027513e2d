//! hello: the smallest libvmm program, in Rust (mirrors examples/hello.c). Loads a
//! freestanding guest (tests/guests/hello.c) into 32 MiB of RAM, gives it a message to
//! checksum, runs it in 64-bit mode at CPL 3, forwards what it writes to port 0xe9 to
//! stdout and prints its exit code.
//! Usage: cargo run --example hello -- [guest.elf]
//! (default: $LIBVMM_BUILD_DIR/tests/guests/hello.elf)
use libvmm::{Exit, LongMode, Space, Vm};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

const RAM_SIZE: u64 = 32 << 20;
const INPUT_GPA: u64 = 0x40_0000; // the guest reads a u32 length and the bytes here

fn main() -> ExitCode {
    let guest = match std::env::args_os().nth(1) {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(std::env::var_os("LIBVMM_BUILD_DIR").unwrap_or_else(|| "build".into()))
            .join("tests/guests/hello.elf"),
    };
    let msg = "Hello from the host, checksum me!";
    match run(&guest, msg) {
        Ok(code) => code,
        Err((what, e)) => {
            eprintln!("hello: {}: {}", what, e);
            ExitCode::FAILURE
        }
    }
}

fn run(guest: &std::path::Path, msg: &str) -> Result<ExitCode, (&'static str, libvmm::Error)> {
    let mut vm = Vm::new().map_err(|e| ("creating the VM", e))?;
    let setup = |vm: &mut Vm| -> libvmm::Result<u64> {
        vm.add_ram(0, RAM_SIZE)?;
        // The console: each byte the guest writes to port 0xe9 goes to stdout.
        vm.bus().on_write(Space::Pio, 0xe9, 1, |_, size, value| {
            let bytes = value.to_le_bytes();
            let _ = std::io::stdout().write_all(&bytes[..size as usize]);
        })?;
        let elf = vm.load_elf_file(guest)?;
        vm.memory().write_u32(INPUT_GPA, msg.len() as u32)?;
        vm.memory().write(INPUT_GPA + 4, msg.as_bytes())?;
        Ok(elf.entry)
    };
    let entry = setup(&mut vm).map_err(|e| ("setting up memory, console and guest", e))?;
    let mut vcpu = vm.create_vcpu(0).map_err(|e| ("creating the vCPU", e))?;
    vcpu.setup_long_mode(&LongMode { cpl: 3, entry, stack: 0x80_0000, ..Default::default() })
        .map_err(|e| ("creating the vCPU", e))?;
    let exit = vcpu.run().map_err(|e| ("running the guest", e))?;
    let _ = std::io::stdout().flush();
    Ok(match exit {
        Exit::Guest(code) => {
            println!("guest exited with code {:#x} (the CRC-32 of \"{}\")", code, msg);
            ExitCode::SUCCESS
        }
        Exit::Fault(f) => {
            eprintln!("hello: guest fault: vector {} at rip {:#x}", f.vector, f.rip);
            ExitCode::FAILURE
        }
        other => {
            eprintln!("hello: unexpected exit {:?}", other);
            ExitCode::FAILURE
        }
    })
}
