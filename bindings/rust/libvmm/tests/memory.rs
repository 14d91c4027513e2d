//! Guest memory round trips and error codes with their messages.
mod common;
use common::*;
use libvmm::{errno, Backing, MemoryMap, Region, Vm, VmOptions};

#[test]
fn memory_round_trip() {
    let mut vm = Vm::new().unwrap();
    vm.add_ram(0, RAM).unwrap();
    vm.add_region(&Region::new(RAM, 2 << 20).backing(Backing::Anon).name("second")).unwrap();
    let mem = vm.memory();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    mem.write(0x12345, &data).unwrap();
    assert_eq!(mem.read_vec(0x12345, data.len()).unwrap(), data);
    // Across the boundary of two adjacent regions.
    mem.write(RAM - 3, b"abcdef").unwrap();
    assert_eq!(mem.read_vec(RAM - 3, 6).unwrap(), b"abcdef");
    mem.write_u64(0x1000, 0x0102_0304_0506_0708).unwrap();
    assert_eq!(mem.read_u32(0x1000).unwrap(), 0x0506_0708);
    assert_eq!(mem.read_u64(0x1000).unwrap(), 0x0102_0304_0506_0708);
    // translate: the host pointer sees the same bytes.
    let p = mem.translate(0x1000, 8, false).unwrap();
    let v = unsafe { std::ptr::read_volatile(p as *const u64) };
    assert_eq!(v, 0x0102_0304_0506_0708);
    let regions = mem.regions().unwrap();
    assert_eq!(regions.len(), 2);
    assert_eq!((regions[0].gpa, regions[0].len), (0, RAM));
    assert_eq!((regions[1].gpa, regions[1].len), (RAM, 2 << 20));
    assert_eq!(regions[1].fd, -1, "anonymous memory has no fd");
    assert!(regions[0].fd >= 0, "memfd");
    // Several threads read at once (Memory is Sync).
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| assert_eq!(mem.read_vec(0x12345, 1000).unwrap(), &data[..1000]));
        }
    });
    vm.remove_region(RAM).unwrap();
    assert_eq!(vm.memory().read_u32(RAM).unwrap_err().errno(), errno::EFAULT);
}

#[test]
fn dirty_tracking_reports_host_writes() {
    let mut map = MemoryMap::new().unwrap();
    map.add_region(&Region::new(0, 1 << 20)).unwrap();
    let mem = map.memory();
    mem.dirty_start().unwrap();
    assert!(mem.dirty_enabled());
    mem.write(0x3000, &[1; 5000]).unwrap(); // pages 3 and 4
    mem.write(0x9000, &[1]).unwrap();
    assert_eq!(mem.dirty_runs().unwrap(), vec![(0x3000, 2), (0x9000, 1)]);
    assert_eq!(mem.dirty_runs().unwrap(), vec![], "collected runs are cleared");
    mem.dirty_stop().unwrap();
    assert_eq!(mem.dirty_runs().unwrap_err().errno(), errno::EINVAL);
}

#[test]
fn errors_carry_errno_and_message() {
    let mut vm = Vm::new().unwrap();
    vm.add_ram(0, RAM).unwrap();
    let mem = vm.memory();

    let e = mem.read_vec(RAM - 2, 4).unwrap_err();
    assert_eq!(e.errno(), errno::EFAULT);
    assert!(e.to_string().contains(&e.description()));

    let e = mem.load_elf_file("/nonexistent/guest.elf").unwrap_err();
    assert_eq!(e.errno(), errno::ENOENT);
    assert!(e.message().contains("/nonexistent/guest.elf"), "message: {:?}", e.message());

    let e = mem.load_elf(b"\x7fELF not really").unwrap_err();
    assert!(e.errno() == errno::EINVAL || e.errno() == errno::ENOEXEC, "{:?}", e);
    assert!(!e.message().is_empty());

    let e = vm.add_region(&Region::new(0x1000, 0x1000)).unwrap_err();
    assert_eq!(e.errno(), errno::EEXIST, "{}", e);
    let e = vm.add_region(&Region::new(RAM + 1, 0x1000)).unwrap_err();
    assert_eq!(e.errno(), errno::EINVAL, "{}", e);
    assert!(!e.message().is_empty());

    // A read-only region refuses host writes.
    vm.add_region(&Region::new(RAM, 0x10000).read_only()).unwrap();
    assert_eq!(vm.memory().write(RAM, b"x").unwrap_err().errno(), errno::EROFS);

    let opts = VmOptions { kvm_path: Some("/nonexistent-kvm".into()), ..Default::default() };
    let e = Vm::with_options(&opts).unwrap_err();
    assert!(e.errno() == errno::ENODEV || e.errno() == errno::ENOENT, "{:?}", e);
    assert!(!e.message().is_empty());

    let opts = VmOptions { dirty_ring_entries: 1000, ..Default::default() };
    assert_eq!(Vm::with_options(&opts).unwrap_err().errno(), errno::EINVAL);

    let vm2 = Vm::new().unwrap();
    let mut cpu = vm2.create_vcpu(0).unwrap();
    let e = cpu.setup_long_mode(&long_mode(3, CODE)).unwrap_err();
    assert_eq!(e.errno(), errno::EFAULT, "no RAM for the system area: {}", e);
    let io_err: std::io::Error = e.into();
    assert_eq!(io_err.raw_os_error(), None);
}
