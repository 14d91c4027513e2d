//! Running guests: the hello guest with its console, registers, exits, kicks, faults,
//! and panics in bus handlers.
mod common;
use common::*;
use libvmm::{errno, Exit, Space, Vm};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const INPUT_GPA: u64 = 0x40_0000;
const PRIMES: &str = "primes: 2 3 5 7 11 13 17 19 23 29 31 37 41 43 47 53 59 61 67 71\n";

fn run_hello(input: &[u8]) -> (String, Exit) {
    let mut vm = Vm::new().unwrap();
    vm.add_ram(0, RAM).unwrap();
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    vm.bus()
        .on_write(Space::Pio, 0xe9, 1, move |_, size, v| {
            let mut o = sink.lock().unwrap();
            for i in 0..size {
                o.push((v >> (8 * i)) as u8);
            }
        })
        .unwrap();
    let elf = vm.load_elf_file(guest("hello")).unwrap();
    assert!(elf.segments >= 1 && elf.entry >= elf.low && elf.entry < elf.high);
    let mem = vm.memory();
    mem.write_u32(INPUT_GPA, input.len() as u32).unwrap();
    mem.write(INPUT_GPA + 4, input).unwrap();
    let mut cpu = vm.create_vcpu(0).unwrap();
    cpu.setup_long_mode(&long_mode(3, elf.entry)).unwrap();
    let exit = cpu.run().unwrap();
    drop(cpu);
    let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
    (text, exit)
}

#[test]
fn hello_guest_prints_and_returns_the_crc() {
    let msg = b"Hello from the host, checksum me!";
    let (text, exit) = run_hello(msg);
    let crc = crc32(msg);
    assert_eq!(text, format!("{}crc32 of {} bytes: {:#x}\n", PRIMES, msg.len(), crc));
    assert_eq!(exit, Exit::Guest(crc as u64));
    assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
}

#[test]
fn counter_guest_exits_once_per_run_at_both_privilege_levels() {
    for cpl in [0, 3] {
        let vm = vm_with_code(COUNTER);
        let mut cpu = vm.create_vcpu(0).unwrap();
        cpu.setup_long_mode(&long_mode(cpl, CODE)).unwrap();
        for n in 1..=20u64 {
            assert_eq!(cpu.run().unwrap(), Exit::Guest(n));
        }
        assert_eq!(vm.memory().read_u64(DATA).unwrap(), 20);
        let sregs = cpu.sregs().unwrap();
        assert_eq!(sregs.cs.selector & 3, cpl as u16);
        assert_ne!(sregs.efer & (1 << 10), 0, "EFER.LMA");
    }
}

#[test]
fn registers_round_trip_and_steer_the_guest() {
    let vm = vm_with_code(COUNTER);
    let mut cpu = vm.create_vcpu(0).unwrap();
    cpu.setup_long_mode(&long_mode(3, CODE)).unwrap();
    let mut regs = cpu.regs().unwrap();
    assert_eq!(regs.rip, CODE);
    assert_eq!(regs.rsp, STACK);
    regs.rbx = 0x1234_5678_9abc_def0;
    regs.r15 = 42;
    cpu.set_regs(&regs).unwrap();
    let back = cpu.regs().unwrap();
    assert_eq!(back, regs);
    assert_eq!(cpu.run().unwrap(), Exit::Guest(1));
    let after = cpu.regs().unwrap();
    assert_eq!(after.rbx, 0x1234_5678_9abc_def0);
    assert_eq!(after.rax, 1);
    // Jump back to the start: the guest continues from the registers we set.
    let mut r = after;
    r.rip = CODE;
    cpu.set_regs(&r).unwrap();
    assert_eq!(cpu.run().unwrap(), Exit::Guest(2));
    // MSRs: IA32_TSC_AUX (0xc0000103) is writable.
    cpu.set_msrs(&[0xc000_0103], &[7]).unwrap();
    assert_eq!(cpu.msrs(&[0xc000_0103]).unwrap(), vec![7]);
    assert_eq!(cpu.translate(CODE).unwrap(), CODE, "identity map");
    let fpu = cpu.fpu().unwrap();
    cpu.set_fpu(&fpu).unwrap();
}

#[test]
fn a_fault_reaches_the_host_with_vector_and_rip() {
    let vm = vm_with_code(UD2);
    let mut cpu = vm.create_vcpu(0).unwrap();
    cpu.setup_long_mode(&long_mode(3, CODE)).unwrap();
    match cpu.run().unwrap() {
        Exit::Fault(f) => {
            assert_eq!(f.vector, 6, "#UD");
            assert_eq!(f.rip, CODE);
            assert_eq!(f.cs & 3, 3);
            assert_eq!(f.error_code, None);
        }
        other => panic!("expected a fault, got {:?}", other),
    }
}

#[test]
fn hlt_at_ring0_and_unhandled_io_exits() {
    // hlt: with the in-kernel LAPIC, KVM waits for an interrupt itself; without an
    // irqchip the exit reaches the host.
    let opts = libvmm::VmOptions { irqchip: libvmm::IrqChip::None, ..Default::default() };
    let mut vm = Vm::with_options(&opts).unwrap();
    assert!(vm.irq().is_none());
    vm.add_ram(0, RAM).unwrap();
    vm.memory().write(CODE, &[0xf4]).unwrap();
    let mut cpu = vm.create_vcpu(0).unwrap();
    cpu.setup_long_mode(&long_mode(0, CODE)).unwrap();
    assert_eq!(cpu.run().unwrap(), Exit::Hlt);
    drop(cpu);
    drop(vm);

    // mov $0x5a, %al; out %al, $0x80 with exit_on_unhandled_io
    let opts = libvmm::VmOptions { exit_on_unhandled_io: true, ..Default::default() };
    let mut vm = Vm::with_options(&opts).unwrap();
    vm.add_ram(0, RAM).unwrap();
    vm.memory().write(CODE, &[0xb0, 0x5a, 0xe6, 0x80, 0xeb, 0xfe]).unwrap();
    let mut cpu = vm.create_vcpu(0).unwrap();
    cpu.setup_long_mode(&long_mode(3, CODE)).unwrap();
    match cpu.run().unwrap() {
        Exit::Io(io) => {
            assert_eq!((io.addr, io.size, io.is_write, io.is_mmio, io.value), (0x80, 1, true, false, 0x5a));
        }
        other => panic!("expected an I/O exit, got {:?}", other),
    }
}

#[test]
fn kick_from_another_thread_stops_a_spinning_guest() {
    let vm = vm_with_code(SPIN);
    let mut cpu = vm.create_vcpu(0).unwrap();
    cpu.setup_long_mode(&long_mode(3, CODE)).unwrap();
    let kicker = cpu.kicker();
    std::thread::scope(|s| {
        s.spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            kicker.kick();
        });
        assert_eq!(cpu.run().unwrap(), Exit::Kick);
    });
    // The vCPU handle can move to another thread and run there.
    std::thread::scope(|s| {
        let h = s.spawn(move || {
            kicker.kick(); // before run: not lost
            cpu.run().unwrap()
        });
        assert_eq!(h.join().unwrap(), Exit::Kick);
    });
}

#[test]
fn bus_handlers_see_reads_and_writes() {
    // mov $0x1234, %dx... simpler: in from port 0x70 (eax = handler value), out to 0xf4.
    // in $0x70, %eax ; out %eax, $0xf4 ; jmp .
    let mut vm = Vm::new().unwrap();
    vm.add_ram(0, RAM).unwrap();
    vm.memory().write(CODE, &[0xe5, 0x70, 0xe7, 0xf4, 0xeb, 0xfe]).unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let s2 = seen.clone();
    vm.bus()
        .register_fn(Space::Pio, 0x70, 4, move |off, size| {
            s2.fetch_add(1, Ordering::SeqCst);
            0xabcd_0000 + off * 0x100 + size as u64
        }, |_, _, _| {})
        .unwrap();
    // Overlapping registration: EEXIST with a message.
    let e = vm.bus().on_write(Space::Pio, 0x71, 1, |_, _, _| {}).unwrap_err();
    assert_eq!(e.errno(), errno::EEXIST);
    let mut cpu = vm.create_vcpu(0).unwrap();
    cpu.setup_long_mode(&long_mode(3, CODE)).unwrap();
    assert_eq!(cpu.run().unwrap(), Exit::Guest(0xabcd_0004));
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    // Direct dispatch, and unregistering frees the range.
    assert_eq!(vm.bus().read(Space::Pio, 0x71, 1).unwrap(), (0xabcd_0101u64) & 0xff);
    vm.bus().unregister(Space::Pio, 0x70).unwrap();
    assert_eq!(vm.bus().read(Space::Pio, 0x70, 1).unwrap_err().errno(), errno::ENOENT);
    assert_eq!(vm.bus().unregister(Space::Pio, 0x70).unwrap_err().errno(), errno::ENOENT);
}

#[test]
fn a_panicking_handler_unwinds_from_run_not_into_c() {
    let mut vm = Vm::new().unwrap();
    vm.add_ram(0, RAM).unwrap();
    // out %al, $0x99 in a loop: without the kick the guest would never return.
    vm.memory().write(CODE, &[0xe6, 0x99, 0xeb, 0xfc]).unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let c2 = calls.clone();
    vm.bus()
        .on_write(Space::Pio, 0x99, 1, move |_, _, _| {
            if c2.fetch_add(1, Ordering::SeqCst) == 2 {
                panic!("handler panic 42");
            }
        })
        .unwrap();
    let mut cpu = vm.create_vcpu(0).unwrap();
    cpu.setup_long_mode(&long_mode(3, CODE)).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cpu.run()));
    let payload = r.expect_err("run should panic");
    let msg = payload.downcast_ref::<&str>().map(|s| s.to_string()).unwrap_or_default();
    assert_eq!(msg, "handler panic 42");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // The VM is still usable: the guest keeps writing, the handler keeps counting.
    let k = cpu.kicker();
    std::thread::scope(|s| {
        s.spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            k.kick();
        });
        assert_eq!(cpu.run().unwrap(), Exit::Kick);
    });
    assert!(calls.load(Ordering::SeqCst) > 3);
}

#[test]
fn vcpu_handles_are_exclusive() {
    let vm = vm_with_code(COUNTER);
    let cpu = vm.create_vcpu(0).unwrap();
    assert_eq!(vm.vcpu(0).unwrap_err().errno(), errno::EBUSY);
    assert_eq!(vm.create_vcpu(0).unwrap_err().errno(), errno::EEXIST);
    assert_eq!(vm.vcpu(1).unwrap_err().errno(), errno::ENOENT);
    drop(cpu);
    let again = vm.vcpu(0).unwrap();
    assert_eq!(again.id(), 0);
    let second = vm.create_vcpu(1).unwrap();
    assert_eq!(vm.vcpu_count(), 2);
    assert_eq!(second.id(), 1);
}

#[test]
fn cpuid_tables() {
    let vm = Vm::new().unwrap();
    let mut t = libvmm::Cpuid::default_for(&vm, 0).unwrap();
    assert!(!t.is_empty());
    let leaf1 = t.get(1, 0).expect("leaf 1");
    assert_ne!(leaf1.ecx & (1 << 21), 0, "x2APIC advertised");
    t.hide_feature("x2apic").unwrap();
    assert_eq!(t.get(1, 0).unwrap().ecx & (1 << 21), 0);
    assert_eq!(t.hide_feature("no-such-feature").unwrap_err().errno(), errno::ENOENT);
    let mut n = 0;
    t.filter(|_| n += 1);
    assert_eq!(n, t.len());
    assert!(libvmm::Cpuid::feature_names().iter().any(|f| f == "avx2"));
    let cpu = vm.create_vcpu_with(0, Some(&t)).unwrap();
    assert_eq!(cpu.id(), 0);
}
