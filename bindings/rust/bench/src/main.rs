//! bench_call: the round trip of a call into a guest, from Rust through the safe
//! bindings against the same loop written in C, measured side by side in one run.
//!
//!   sandbox  `Sandbox::call("add", [1, 2])` vs `vmm_sandbox_call` (reset + one exit
//!            per call); the function-call round trip of the issue
//!   vcpu-0   `Vcpu::run` vs `vmm_vcpu_run` on a guest that writes the exit port and
//!            loops, at CPL 0 (one port-I/O exit per run)
//!   vcpu-3   the same at CPL 3
//!   getter   a trivial library call (`Vm::exit_port` vs `vmm_vm_exit_port`)
//!
//! Single calls (batches for the getter) alternate between Rust and C in ABBA order, so
//! machine noise hits both; the ratio is median(Rust) / median(C) per call over all
//! samples. Goal: <= 1.05.
//! Usage: bench_call [samples] (env LIBVMM_BUILD_DIR: the CMake build, for the guests)
use libvmm::{sys, Exit, LongMode, Sandbox, Vm};
use std::ffi::CString;
use std::time::Instant;

extern "C" {
    fn bench_c_vcpu_runs(vcpu: *mut sys::vmm_vcpu, n: u64) -> i64;
    fn bench_c_sandbox_calls(sb: *mut sys::vmm_sandbox, f: *const std::os::raw::c_char, n: u64) -> i64;
    fn bench_c_getter(vm: *mut sys::vmm_vm, n: u64) -> i64;
}

const COUNTER: &[u8] = &[
    0x48, 0x83, 0x04, 0x25, 0x00, 0x00, 0x30, 0x00, 0x01, 0x8b, 0x04, 0x25, 0x00, 0x00, 0x30, 0x00, 0xe7, 0xf4,
    0xeb, 0xec,
];

/// Hides a value from the optimizer (std::hint::black_box needs Rust 1.66).
fn opaque<T: Copy>(x: T) -> T {
    // SAFETY: a plain read of a valid local.
    unsafe { std::ptr::read_volatile(&x) }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Times single calls, alternating Rust and C in ABBA order so machine noise (these
/// machines are shared) hits both alike; each closure runs `n` calls and returns the
/// nanoseconds they took. Returns (median Rust ns/call, median C ns/call).
fn compare(samples: usize, n: u64, mut rust: impl FnMut(u64) -> f64, mut c: impl FnMut(u64) -> f64) -> (f64, f64) {
    for _ in 0..(samples / 20).max(2) {
        rust(n);
        c(n);
    }
    let (mut rs, mut cs) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
    for i in 0..samples {
        if i % 4 == 0 || i % 4 == 3 {
            rs.push(rust(n) / n as f64);
            cs.push(c(n) / n as f64);
        } else {
            cs.push(c(n) / n as f64);
            rs.push(rust(n) / n as f64);
        }
    }
    (median(&mut rs), median(&mut cs))
}

fn report(name: &str, what: &str, n: u64, (r, c): (f64, f64)) -> f64 {
    let ratio = r / c;
    println!(
        "{:<8} {:>6} call(s)/sample  Rust {:>10.1} ns/call  C {:>10.1} ns/call  ratio {:.3}  {}",
        name, n, r, c, ratio, what
    );
    ratio
}

fn vcpu_bench(cpl: u32, rounds: usize, n: u64) -> (f64, f64) {
    let mut vm = Vm::new().expect("Vm::new");
    vm.add_ram(0, 32 << 20).unwrap();
    vm.memory().write(0x20_0000, COUNTER).unwrap();
    let mut cpu = vm.create_vcpu(0).unwrap();
    cpu.setup_long_mode(&LongMode { cpl, entry: 0x20_0000, stack: 0x80_0000, ..Default::default() }).unwrap();
    let raw = cpu.as_raw();
    let cell = std::cell::RefCell::new(cpu);
    compare(
        rounds,
        n,
        |n| {
            let mut cpu = cell.borrow_mut();
            let t = Instant::now();
            for _ in 0..n {
                match cpu.run() {
                    Ok(Exit::Guest(_)) => {}
                    other => panic!("unexpected {:?}", other),
                }
            }
            t.elapsed().as_nanos() as f64
        },
        |n| {
            let _held = cell.borrow_mut(); // same vCPU, same thread
            // SAFETY: the vCPU is alive and driven by this thread only.
            let r = unsafe { bench_c_vcpu_runs(raw, n) };
            assert!(r >= 0, "C loop failed: {}", r);
            r as f64
        },
    )
}

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(2000);
    let build = std::path::PathBuf::from(std::env::var_os("LIBVMM_BUILD_DIR").expect("set LIBVMM_BUILD_DIR"));
    println!("libvmm {} - Rust bindings vs C, {} alternating samples each, median per call", libvmm::version(), rounds);

    // The function-call round trip through a sandbox.
    let guest = build.join("tests/sandbox_guests/sbx_basic.elf");
    let mut sandbox_ratio = None;
    match Sandbox::builder().elf_path(&guest).build() {
        Ok(sb) => {
            let name = CString::new("add").unwrap();
            let raw = sb.as_raw();
            let cell = std::cell::RefCell::new(sb);
            let n = 1;
            let res = compare(
                rounds,
                n,
                |n| {
                    let mut sb = cell.borrow_mut();
                    let t = Instant::now();
                    for _ in 0..n {
                        assert_eq!(sb.call("add", &[1, 2]).unwrap(), 3);
                    }
                    t.elapsed().as_nanos() as f64
                },
                |n| {
                    let _held = cell.borrow_mut();
                    // SAFETY: the sandbox is alive and used by this thread only.
                    let r = unsafe { bench_c_sandbox_calls(raw, name.as_ptr(), n) };
                    assert!(r >= 0, "C loop failed: {}", r);
                    r as f64
                },
            );
            sandbox_ratio = Some(report("sandbox", "Sandbox::call vs vmm_sandbox_call (function-call round trip)", n, res));
        }
        Err(e) => println!("sandbox  not measured: {} ({})", e, guest.display()),
    }
    let r0 = report("vcpu-0", "Vcpu::run vs vmm_vcpu_run, port-I/O exit at CPL 0", 1, vcpu_bench(0, rounds, 1));
    let r3 = report("vcpu-3", "Vcpu::run vs vmm_vcpu_run, port-I/O exit at CPL 3", 1, vcpu_bench(3, rounds / 4, 1));

    let vm = Vm::new().unwrap();
    let raw = vm.as_raw();
    let n = 100_000;
    let g = compare(
        rounds / 20,
        n,
        |n| {
            let t = Instant::now();
            let mut sink = 0u16;
            for _ in 0..n {
                sink = sink.wrapping_add(opaque(&vm).exit_port());
            }
            opaque(sink);
            t.elapsed().as_nanos() as f64
        },
        // SAFETY: the VM is alive.
        |n| unsafe { bench_c_getter(raw, n) } as f64,
    );
    report("getter", "Vm::exit_port vs vmm_vm_exit_port (bare FFI crossing)", n, g);

    let headline = sandbox_ratio.unwrap_or(r0);
    println!(
        "result: Rust/C = {:.3} ({}); goal <= 1.05: {}",
        headline,
        if sandbox_ratio.is_some() { "sandbox call round trip" } else { "vCPU run round trip at CPL 0" },
        if headline <= 1.05 { "met" } else { "NOT met" }
    );
    let _ = r3;
}
