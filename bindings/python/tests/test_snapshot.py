"""Snapshots: save/restore through files, and in-memory take/clone/reset."""
import errno
import os
import tempfile
import threading
import time

import libvmm
from libvmm import ExitReason, MemMode, Snapshot, _lib

from support import GuestVM, KvmTestCase

EVERY = 1 << 16
MASK = (1 << 64) - 1


def expected_hash(n):
    h = 0
    for c in range(1, n + 1):
        h = ((h ^ c) * 0x100000001B3) & MASK
    return h


class CountingGuest(GuestVM):
    """snap_count: reports counter / EVERY on the exit port every EVERY iterations and
    keeps counter and a running hash in memory (tests/guests/snap_count.c)."""

    def __init__(self):
        super().__init__("snap_count")
        self.vm.memory.write_u64(self.sym("cfg_every"), EVERY)


def state(vm, g):
    return vm.memory.read_u64(g.sym("counter")), vm.memory.read_u64(g.sym("hash"))


class FileSnapshotTest(KvmTestCase):
    def setUp(self):
        super().setUp()
        self.dir = tempfile.TemporaryDirectory()
        self.state = os.path.join(self.dir.name, "vm.state")
        self.mem = os.path.join(self.dir.name, "vm.mem")

    def tearDown(self):
        self.dir.cleanup()

    def test_save_and_restore_continue_exactly(self):
        with CountingGuest() as g:
            x = g.cpu.run(timeout=30)
            self.assertEqual((x.reason, x.code), (ExitReason.GUEST, 1))
            g.vm.save(self.state, self.mem)
            self.assertEqual(state(g.vm, g), (EVERY, expected_hash(EVERY)))
            for mode in (MemMode.EAGER, MemMode.LAZY):
                with libvmm.VM.restore(self.state, self.mem, mode=mode) as vm2:
                    self.assertEqual(len(vm2.vcpus), 1)
                    self.assertEqual(state(vm2, g), (EVERY, expected_hash(EVERY)))
                    cpu = vm2.vcpus[0]
                    self.assertEqual(cpu.regs.rip, g.cpu.regs.rip)
                    for report in (2, 3):
                        x = cpu.run(timeout=30)
                        self.assertEqual((x.reason, x.code), (ExitReason.GUEST, report))
                    self.assertEqual(state(vm2, g), (3 * EVERY, expected_hash(3 * EVERY)))
            # The saved VM itself continues unaffected.
            x = g.cpu.run(timeout=30)
            self.assertEqual(x.code, 2)

    def test_state_from_bytes_and_fds(self):
        with CountingGuest() as g:
            g.cpu.run(timeout=30)
            with open(self.state, "w+b") as sf, open(self.mem, "w+b") as mf:
                g.vm.save(sf.fileno(), mf.fileno())
                sf.seek(0)
                blob = sf.read()
                with libvmm.VM.restore(blob, mf.fileno()) as vm2:
                    self.assertEqual(vm2.vcpus[0].run(timeout=30).code, 2)

    def test_corrupted_state_is_refused(self):
        with CountingGuest() as g:
            g.cpu.run(timeout=30)
            g.vm.save(self.state, self.mem)
        blob = bytearray(open(self.state, "rb").read())
        blob[len(blob) // 2] ^= 0x40
        with self.assertRaises(libvmm.VmmError) as cm:
            libvmm.VM.restore(bytes(blob), self.mem)
        self.assertIn(cm.exception.errno, (errno.EBADMSG, errno.EINVAL))
        self.assertTrue(cm.exception.detail)
        with self.assertRaises(libvmm.VmmError) as cm:
            libvmm.VM.restore(b"not a snapshot", self.mem)
        self.assertEqual(cm.exception.errno, errno.EINVAL)

    def test_save_while_running_is_busy(self):
        with CountingGuest() as g:
            g.vm.memory.write_u64(g.sym("cfg_every"), 1 << 62)  # never exits by itself
            result = []
            t = threading.Thread(target=lambda: result.append(g.cpu.run(timeout=60)))
            t.start()
            # Once the counter moves, the vCPU is inside run() until kicked.
            deadline = time.monotonic() + 30
            while g.vm.memory.read_u64(g.sym("counter")) == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            try:
                with self.assertRaises(libvmm.VmmError) as cm:
                    g.vm.save(self.state, self.mem)
                self.assertEqual(cm.exception.errno, errno.EBUSY)
            finally:
                g.cpu.kick()
                t.join()
            self.assertEqual(result[0].reason, ExitReason.KICK)
            g.vm.save(self.state, self.mem)  # stopped now: the save works


class InMemorySnapshotTest(KvmTestCase):
    def setUp(self):
        super().setUp()
        if not _lib.has("vmm_snapshot_take"):
            self.skipTest("this libvmm.so has no in-memory snapshots (vmm_snapshot_take)")

    def test_take_clone_reset(self):
        with CountingGuest() as g:
            self.assertEqual(g.cpu.run(timeout=30).code, 1)
            with g.vm.take_snapshot() as snap:
                self.assertEqual(snap.vcpu_count, 1)
                self.assertEqual(snap.mem_size, 32 << 20)
                clones = [snap.clone() for _ in range(3)]
                try:
                    for i, c in enumerate(clones):
                        for _ in range(i + 1):
                            c.vcpus[0].run(timeout=30)
                        self.assertEqual(state(c, g)[0], (i + 2) * EVERY)
                    # Clones are independent of each other and of the source.
                    self.assertEqual(state(g.vm, g)[0], EVERY)
                    # Reset a clone: back to the snapshot, then it runs the same way again.
                    st = snap.reset(clones[2])
                    self.assertGreaterEqual(st["pages_copied"], 1)
                    self.assertEqual(st["nr_vcpus"], 1)
                    self.assertEqual(state(clones[2], g), (EVERY, expected_hash(EVERY)))
                    self.assertEqual(clones[2].vcpus[0].run(timeout=30).code, 2)
                    # And the source VM, bound by the take.
                    g.cpu.run(timeout=30)
                    g.cpu.run(timeout=30)
                    snap.reset(g.vm)
                    self.assertEqual(state(g.vm, g), (EVERY, expected_hash(EVERY)))
                    self.assertEqual(g.cpu.run(timeout=30).code, 2)
                finally:
                    for c in clones:
                        c.close()

    def test_write_and_open(self):
        with tempfile.TemporaryDirectory() as d, CountingGuest() as g:
            g.cpu.run(timeout=30)
            with g.vm.take_snapshot() as snap:
                snap.write(f"{d}/s", f"{d}/m")
            with Snapshot.open(f"{d}/s", f"{d}/m") as snap2, snap2.clone() as vm2:
                self.assertEqual(vm2.vcpus[0].run(timeout=30).code, 2)
                self.assertEqual(state(vm2, g)[0], 2 * EVERY)


class DeviceStateTest(KvmTestCase):
    def test_device_state_in_snapshots(self):
        if not _lib.has("vmm_snapshot_take"):
            self.skipTest("this libvmm.so has no in-memory snapshots (vmm_snapshot_take)")
        with GuestVM("virtio_rng") as g:
            t = g.vm.attach(libvmm.Rng(), 0xD0000000, 5)
            g.cpu.set_regs(rdi=1)
            self.assertEqual(g.cpu.run(timeout=30).code, 0x100)
            blob = t.save_state()
            self.assertEqual(blob[:4], b"LVDS")
            t.load_state(blob)
            with self.assertRaises(libvmm.VmmError) as cm:
                t.load_state(b"LVDS" + bytes(60))
            self.assertEqual(cm.exception.errno, errno.EINVAL)
            with g.vm.take_snapshot(devices=[t]) as snap:
                self.assertEqual(snap.device_count, 1)
                self.assertEqual(snap.device_state(0)[:4], b"LVDS")
                self.assertTrue(g.vm.loop.running)  # paused for the take, then resumed
