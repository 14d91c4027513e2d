//! Snapshots: files (save/restore) and in memory (take/clone/reset).
mod common;
use common::*;
use libvmm::{errno, Exit, MemMode, Snapshot, Vm};
use std::path::PathBuf;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("libvmm-rs-{}-{}", std::process::id(), name));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn save_and_restore_files_round_trip() {
    let dir = scratch("files");
    let (state, mem) = (dir.join("state"), dir.join("mem"));
    let vm = vm_with_code(COUNTER);
    let mut cpu = vm.create_vcpu(0).unwrap();
    cpu.setup_long_mode(&long_mode(3, CODE)).unwrap();
    for n in 1..=3 {
        assert_eq!(cpu.run().unwrap(), Exit::Guest(n));
    }
    vm.save(&state, &mem).unwrap();
    assert!(std::fs::metadata(&state).unwrap().len() > 0);
    for mode in [MemMode::Eager, MemMode::Lazy] {
        let vm2 = Vm::restore(&state, &mem, mode).unwrap();
        assert_eq!(vm2.vcpu_count(), 1);
        assert_eq!(vm2.memory().read_u64(DATA).unwrap(), 3);
        let mut c2 = vm2.vcpu(0).unwrap();
        assert_eq!(c2.run().unwrap(), Exit::Guest(4));
        assert_eq!(c2.run().unwrap(), Exit::Guest(5));
        assert_eq!(c2.regs().unwrap().rax, 5);
    }
    // The saved VM continues unaffected.
    assert_eq!(cpu.run().unwrap(), Exit::Guest(4));

    // A corrupted state file is refused with a reason.
    let mut bytes = std::fs::read(&state).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    let bad = dir.join("bad-state");
    std::fs::write(&bad, &bytes).unwrap();
    let e = Vm::restore(&bad, &mem, MemMode::Eager).unwrap_err();
    assert!(e.errno() == errno::EBADMSG || e.errno() == errno::EINVAL, "{:?}", e);
    assert!(!e.message().is_empty());
    let e = Vm::restore(dir.join("missing"), &mem, MemMode::Eager).unwrap_err();
    assert_eq!(e.errno(), errno::ENOENT);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn take_clone_and_reset_in_memory() {
    let vm = vm_with_code(COUNTER);
    let mut cpu = vm.create_vcpu(0).unwrap();
    cpu.setup_long_mode(&long_mode(3, CODE)).unwrap();
    for n in 1..=4 {
        assert_eq!(cpu.run().unwrap(), Exit::Guest(n));
    }
    let snap = Snapshot::take(&vm).unwrap();
    assert_eq!(snap.vcpu_count(), 1);
    assert_eq!(snap.mem_size(), RAM);
    assert_eq!(snap.device_count(), 0);
    assert_eq!(snap.device_state(0).unwrap_err().errno(), errno::ENOENT);

    assert_eq!(cpu.run().unwrap(), Exit::Guest(5));
    assert_eq!(cpu.run().unwrap(), Exit::Guest(6));
    let stats = snap.reset(&vm).unwrap();
    assert_eq!(stats.nr_vcpus, 1);
    assert!(stats.pages_copied >= 1, "{:?}", stats);
    assert_eq!(vm.memory().read_u64(DATA).unwrap(), 4);
    assert_eq!(cpu.run().unwrap(), Exit::Guest(5));

    // Clones share the snapshot's memory copy-on-write and run independently.
    let a = snap.clone_vm().unwrap();
    let b = snap.clone_vm().unwrap();
    let (mut ca, mut cb) = (a.vcpu(0).unwrap(), b.vcpu(0).unwrap());
    assert_eq!(ca.run().unwrap(), Exit::Guest(5));
    assert_eq!(ca.run().unwrap(), Exit::Guest(6));
    assert_eq!(cb.run().unwrap(), Exit::Guest(5));
    snap.reset(&a).unwrap();
    assert_eq!(ca.run().unwrap(), Exit::Guest(5));
    // Clones run on other threads (Snapshot and Vm are Sync, Vcpu is Send).
    std::thread::scope(|s| {
        s.spawn(move || assert_eq!(ca.run().unwrap(), Exit::Guest(6)));
        s.spawn(move || assert_eq!(cb.run().unwrap(), Exit::Guest(6)));
    });

    // Written to files, reopened, cloned.
    let dir = scratch("inmem");
    snap.write(dir.join("s"), dir.join("m")).unwrap();
    let reopened = Snapshot::open(dir.join("s"), dir.join("m")).unwrap();
    let c = reopened.clone_vm().unwrap();
    drop(reopened); // the clone keeps its own reference
    assert_eq!(c.vcpu(0).unwrap().run().unwrap(), Exit::Guest(5));

    // A VM not bound to the snapshot cannot be reset to it.
    let other = vm_with_code(COUNTER);
    let _oc = other.create_vcpu(0).unwrap();
    let e = snap.reset(&other).unwrap_err();
    assert_eq!(e.errno(), errno::EINVAL);
    assert!(!e.message().is_empty());
    drop(snap);
    std::fs::remove_dir_all(&dir).unwrap();
}
