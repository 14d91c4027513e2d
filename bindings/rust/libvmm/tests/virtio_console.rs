//! virtio-console with the callback back end, its loop on a thread of its own.
mod common;
use common::*;
use libvmm::{Exit, Loop, Space, VirtioDevice, Vm};
use std::sync::{Arc, Mutex};

const CON_BASE: u64 = 0xd000_0000;
const CON_GSI: u32 = 5;

fn echo_vm() -> Vm {
    let mut vm = Vm::new().unwrap();
    vm.add_ram(0, RAM).unwrap();
    vm.bus().on_write(Space::Pio, 0xe9, 1, |_, _, _| {}).unwrap();
    vm.load_elf_file(guest("vcon_echo")).unwrap();
    vm
}

#[test]
fn console_echo_through_a_loop_thread() {
    let vm = echo_vm();
    let entry = vm.memory().load_elf_file(guest("vcon_echo")).unwrap().entry;
    let lp = Loop::new().unwrap();
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    let main_thread = std::thread::current().id();
    let seen_thread = Arc::new(Mutex::new(None));
    let seen = seen_thread.clone();
    let dev = VirtioDevice::console(move |b| {
        sink.lock().unwrap().extend_from_slice(b);
        *seen.lock().unwrap() = Some(std::thread::current().id());
    })
    .unwrap();
    let con = vm.attach_virtio_mmio(&lp, CON_BASE, CON_GSI, dev).unwrap();
    assert_eq!(con.cmdline(), "virtio_mmio.device=4K@0xd0000000:5");
    // Input before the driver is ready waits for it.
    assert_eq!(con.console_input(b"ping pong\n").unwrap(), 10);
    let mut cpu = vm.create_vcpu(0).unwrap();
    cpu.setup_long_mode(&long_mode(3, entry)).unwrap();
    let mut regs = cpu.regs().unwrap();
    regs.rdi = 1; // echo mode
    cpu.set_regs(&regs).unwrap();
    std::thread::scope(|s| {
        let lt = s.spawn(|| lp.run());
        assert_eq!(cpu.run().unwrap(), Exit::Guest(0x100));
        lp.stop();
        lt.join().unwrap().unwrap();
    });
    assert_eq!(String::from_utf8(out.lock().unwrap().clone()).unwrap(), "hello from guest\nPING PONG\n");
    let t = seen_thread.lock().unwrap().unwrap();
    assert_ne!(t, main_thread, "output arrives on the loop thread");
    assert_ne!(con.status() & 4, 0, "DRIVER_OK");
    assert_eq!(con.error(), "");
    assert!(con.stats().notifies >= 2);
    // A second run() on another thread while one runs is refused.
    std::thread::scope(|s| {
        let lt = s.spawn(|| lp.run());
        std::thread::sleep(std::time::Duration::from_millis(50));
        let e = lp.run().unwrap_err();
        assert_eq!(e.errno(), libvmm::errno::EBUSY);
        lp.stop();
        lt.join().unwrap().unwrap();
    });
}

#[test]
fn a_panicking_console_callback_stops_the_loop_and_resumes_there() {
    let vm = echo_vm();
    let entry = vm.memory().load_elf_file(guest("vcon_echo")).unwrap().entry;
    let lp = Loop::new().unwrap();
    let dev = VirtioDevice::console(|b| {
        if b.starts_with(b"hello") {
            panic!("console callback panic");
        }
    })
    .unwrap();
    let con = vm.attach_virtio_mmio(&lp, CON_BASE, CON_GSI, dev).unwrap();
    let mut cpu = vm.create_vcpu(0).unwrap();
    cpu.setup_long_mode(&long_mode(3, entry)).unwrap();
    let mut regs = cpu.regs().unwrap();
    regs.rdi = 1;
    cpu.set_regs(&regs).unwrap();
    let kicker = cpu.kicker();
    std::thread::scope(|s| {
        let lt = s.spawn(|| lp.run());
        // The guest greets (the callback panics on the loop thread, which stops the
        // loop and unwinds there), then waits for input forever: kick it once the loop
        // thread is gone.
        let watcher = s.spawn(move || {
            let r = lt.join();
            kicker.kick();
            match r {
                Err(payload) => payload.downcast_ref::<&str>() == Some(&"console callback panic"),
                Ok(_) => false,
            }
        });
        assert_eq!(cpu.run().unwrap(), Exit::Kick);
        assert!(watcher.join().unwrap(), "the loop thread should panic with the callback's message");
    });
    // The loop can run again afterwards.
    std::thread::scope(|s| {
        let lt = s.spawn(|| lp.run());
        lp.stop();
        lt.join().unwrap().unwrap();
    });
    drop(con); // pauses the (stopped) loop, detaches
}

#[test]
fn dropping_a_device_while_the_loop_runs_pauses_it() {
    let vm = echo_vm();
    let lp = Loop::new().unwrap();
    std::thread::scope(|s| {
        let lt = s.spawn(|| lp.run());
        for i in 0..20u64 {
            let con = vm
                .attach_virtio_mmio(&lp, CON_BASE + i * 0x1000, CON_GSI, VirtioDevice::console(|_| {}).unwrap())
                .unwrap();
            let rng = vm.attach_virtio_mmio(&lp, CON_BASE + 0x10_0000, 6, VirtioDevice::rng().unwrap()).unwrap();
            drop(con);
            drop(rng);
        }
        lp.stop();
        lt.join().unwrap().unwrap();
    });
    // MMIO range taken: EEXIST, and the device given back is freed.
    let _a = vm.attach_virtio_mmio(&lp, CON_BASE, CON_GSI, VirtioDevice::rng().unwrap()).unwrap();
    let e = vm.attach_virtio_mmio(&lp, CON_BASE, CON_GSI, VirtioDevice::rng().unwrap()).unwrap_err();
    assert_eq!(e.errno(), libvmm::errno::EEXIST);
}
