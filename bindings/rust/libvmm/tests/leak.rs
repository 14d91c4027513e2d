//! Thousands of create/destroy cycles leave no file descriptor and no memory behind.
//! One test in its own process, so nothing else changes the counts meanwhile.
mod common;
use common::*;
use libvmm::{Exit, Loop, Sandbox, Snapshot, Space, VirtioDevice, Vm};

fn vm_cycle(lp: &Loop, i: u64) {
    let mut vm = Vm::new().unwrap();
    vm.add_ram(0, 4 << 20).unwrap();
    vm.memory().write(CODE, COUNTER).unwrap();
    vm.bus().on_write(Space::Pio, 0xe9, 1, move |_, _, v| assert!(v < 256 || i > 0)).unwrap();
    let _con = if i % 10 == 0 {
        Some(vm.attach_virtio_mmio(lp, 0xd000_0000, 5, VirtioDevice::console(|_| {}).unwrap()).unwrap())
    } else {
        None
    };
    let mut cpu = vm.create_vcpu(0).unwrap();
    if i % 8 == 0 {
        cpu.setup_long_mode(&libvmm::LongMode {
            cpl: 0,
            entry: CODE,
            stack: 0x3f_0000,
            identity_map: 1 << 30,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(cpu.run().unwrap(), Exit::Guest(1));
    }
}

fn measure(label: &str, rounds: u64, mut f: impl FnMut(u64)) {
    for i in 0..rounds / 10 {
        f(i); // warm up: allocator pools, thread-locals, signal handler
    }
    let (fd0, rss0) = (fd_count(), rss());
    for i in 0..rounds {
        f(i);
    }
    let (fd1, rss1) = (fd_count(), rss());
    println!("{}: {} cycles, fds {} -> {}, RSS {} -> {} KiB", label, rounds, fd0, fd1, rss0 >> 10, rss1 >> 10);
    assert_eq!(fd1, fd0, "{}: file descriptors leaked", label);
    assert!(rss1 < rss0 + (16 << 20), "{}: RSS grew from {} to {} KiB", label, rss0 >> 10, rss1 >> 10);
}

#[test]
fn create_destroy_cycles_do_not_leak() {
    let lp = Loop::new().unwrap();
    measure("VM + RAM + bus handler + vCPU (+ console every 10th)", 2000, |i| vm_cycle(&lp, i));

    let base = vm_with_code(COUNTER);
    let mut cpu = base.create_vcpu(0).unwrap();
    cpu.setup_long_mode(&long_mode(3, CODE)).unwrap();
    assert_eq!(cpu.run().unwrap(), Exit::Guest(1));
    let snap = Snapshot::take(&base).unwrap();
    measure("snapshot clone + run + reset", 1000, |_| {
        let c = snap.clone_vm().unwrap();
        let mut v = c.vcpu(0).unwrap();
        assert_eq!(v.run().unwrap(), Exit::Guest(2));
        snap.reset(&c).unwrap();
        assert_eq!(v.run().unwrap(), Exit::Guest(2));
    });

    let elf = std::fs::read(sandbox_guest("sbx_basic")).unwrap();
    measure("sandbox create + call + destroy", 300, |i| {
        let mut sb = Sandbox::builder()
            .elf(&elf)
            .host_fn(1, None, |_, a| Ok(a[0] + 1))
            .host_fn(7, Some("times_two"), |_, a| Ok(a[0] * 2))
            .build()
            .unwrap();
        assert_eq!(sb.call("add", &[i, 1]).unwrap(), i + 1);
    });
}
