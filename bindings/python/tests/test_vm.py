"""VMs, guest memory, vCPUs and errors, on real guests (tests/guests/*.elf)."""
import errno
import os
import threading
import zlib

import libvmm
from libvmm import ExitReason, VmmError

import support
from support import GuestVM, KvmTestCase

PRIMES = b"primes: 2 3 5 7 11 13 17 19 23 29 31 37 41 43 47 53 59 61 67 71\n"
INPUT_GPA = 0x400000


class HelloGuestTest(KvmTestCase):
    def run_hello(self, data):
        with GuestVM("hello") as g:
            g.vm.memory.write_u32(INPUT_GPA, len(data))
            g.vm.memory.write(INPUT_GPA + 4, data)
            x = g.cpu.run(timeout=20)
            return x, g.console()

    def test_hello_computes_crc_and_prints(self):
        msg = b"Hello from Python, checksum me!"
        x, out = self.run_hello(msg)
        crc = zlib.crc32(msg)
        self.assertEqual(x.reason, ExitReason.GUEST)
        self.assertEqual(x.code, crc)
        self.assertEqual(out, PRIMES + f"crc32 of {len(msg)} bytes: {crc:#x}\n".encode())

    def test_buffer_types_are_accepted(self):
        data = bytes(range(256)) * 4
        for buf in (bytearray(data), memoryview(data), memoryview(bytearray(data))[::1]):
            x, _ = self.run_hello(buf)
            self.assertEqual(x.code, zlib.crc32(data))

    def test_registers_and_long_mode(self):
        with GuestVM("hello") as g:
            r = g.cpu.regs
            self.assertEqual(r.rip, g.info.entry)
            self.assertEqual(r.rsp, support.STACK_TOP)
            self.assertEqual(r["rip"], g.info.entry)
            g.cpu.set_regs(rdi=0x1234, r15=0xdeadbeefcafef00d)
            r2 = g.cpu.regs
            self.assertEqual((r2.rdi, r2.r15), (0x1234, 0xdeadbeefcafef00d))
            self.assertEqual(r2.rip, r.rip)
            g.cpu.regs = {"rax": 7}
            self.assertEqual(g.cpu.regs.rax, 7)
            s = g.cpu.sregs
            self.assertEqual(s.cs.l, 1)                # 64-bit code segment
            self.assertEqual(s.cs.selector & 3, 3)     # CPL 3
            self.assertTrue(s.efer & (1 << 10))        # LMA
            self.assertEqual(g.cpu.translate(g.info.entry), g.info.entry)  # identity map
            self.assertEqual(g.vm.exit_port, 0xF4)
            # x2APIC base MSR is readable through the MSR interface.
            self.assertIn(0x1B, g.cpu.get_msrs([0x1B]))


class MemoryTest(KvmTestCase):
    def test_round_trip_and_views(self):
        with libvmm.VM() as vm:
            m = vm.memory
            reg = m.add_region(0, 2 << 20, name="ram")
            self.assertEqual((reg.gpa, reg.len, reg.readonly), (0, 2 << 20, False))
            hi = m.add_region(0x100000000, 1 << 20, readonly=True)
            self.assertTrue(hi.readonly)
            self.assertEqual([r.gpa for r in m.regions()], [0, 0x100000000])
            payload = os.urandom(10000)
            m.write(0x1234, payload)
            self.assertEqual(m.read(0x1234, len(payload)), payload)
            buf = bytearray(len(payload))
            self.assertEqual(m.read_into(0x1234, buf), len(payload))
            self.assertEqual(bytes(buf), payload)
            m.write_u64(0x8000, 0x1122334455667788)
            self.assertEqual(m.read_u64(0x8000), 0x1122334455667788)
            # A view shares memory with the guest's RAM, in both directions.
            v = m.view(0x8000, 16)
            self.assertEqual(bytes(v[:8]), (0x1122334455667788).to_bytes(8, "little"))
            v[8:16] = b"ABCDEFGH"
            self.assertEqual(m.read(0x8008, 8), b"ABCDEFGH")
            ro = m.view(0x100000000, 4096)
            self.assertTrue(ro.readonly)
            m.remove_region(0x100000000)
            self.assertEqual(len(m.regions()), 1)
            self.assertEqual(len(bytes(ro)), 4096)  # still mapped: no dangling view
        # The view outlives the VM without crashing.
        self.assertEqual(bytes(v[8:16]), b"ABCDEFGH")
        v.release()

    def test_file_backed_region(self):
        import tempfile
        with tempfile.TemporaryFile() as f, libvmm.VM() as vm:
            f.truncate(1 << 20)
            r = vm.memory.add_region(0x10000000, 1 << 20, backing="file", fd=f.fileno())
            self.assertGreaterEqual(r.fd, 0)
            vm.memory.write(0x10000000 + 4096, b"through the guest map")
            f.seek(4096)
            self.assertEqual(f.read(21), b"through the guest map")
            self.assertEqual(bytes(vm.memory.view(0x10001000, 7)), b"through")

    def test_anonymous_region_has_no_view(self):
        with libvmm.VM() as vm:
            vm.memory.add_region(0, 1 << 20, backing="anon")
            vm.memory.write(0, b"x")
            with self.assertRaises(VmmError) as cm:
                vm.memory.view(0, 1)
            self.assertEqual(cm.exception.errno, errno.ENOTSUP)

    def test_dirty_pages(self):
        with libvmm.VM() as vm:
            vm.memory.add_region(0, 1 << 20)
            vm.memory.dirty_start()
            self.assertTrue(vm.memory.dirty_enabled)
            vm.memory.write(0x3000, b"a")
            vm.memory.write(0x9000, b"b" * 5000)
            self.assertEqual(vm.memory.dirty_pages(0), [0x3000, 0x9000, 0xA000])
            self.assertEqual(vm.memory.dirty_pages(0), [])


class ErrorTest(KvmTestCase):
    def assertVmmError(self, err, fn, *args, **kw):
        with self.assertRaises(VmmError) as cm:
            fn(*args, **kw)
        e = cm.exception
        self.assertEqual(e.errno, err, str(e))
        self.assertIsInstance(e, OSError)
        return e

    def test_errors_carry_errno_and_detail(self):
        with libvmm.VM() as vm:
            m = vm.memory
            m.add_region(0, 1 << 20)
            e = self.assertVmmError(errno.EEXIST, m.add_region, 0x80000, 1 << 20)
            self.assertIn("overlaps", e.detail)
            self.assertIn(e.detail, str(e))
            self.assertEqual(e.function, "vmm_mem_add_region")
            self.assertEqual(e.strerror, libvmm.strerror(errno.EEXIST))
            self.assertVmmError(errno.EINVAL, m.add_region, 0x200001, 4096)
            self.assertVmmError(errno.EINVAL, m.add_region, 0x200000, 0)
            self.assertVmmError(errno.ENOENT, m.remove_region, 0x5000)
            self.assertVmmError(errno.EFAULT, m.read, (1 << 20) - 4, 8)
            self.assertVmmError(errno.EFAULT, m.write, 1 << 30, b"x")
            m.add_region(0x200000, 4096, readonly=True)
            self.assertVmmError(errno.EROFS, m.write, 0x200000, b"x")
            vm.create_vcpu(0)
            self.assertVmmError(errno.EEXIST, vm.create_vcpu, 0)
            self.assertVmmError(errno.ENOENT, vm.load_elf, "/nonexistent/guest.elf")
            e = self.assertVmmError(errno.EINVAL, vm.load_elf, b"\x7fELF" + b"\0" * 60)
            self.assertTrue(e.detail)
            self.assertVmmError(errno.ENOENT, libvmm.elf_symbol,
                                support.guest("hello"), "no_such_symbol")
            vm.bus.register_pio(0x100, 4, read=lambda o, s: 0)
            self.assertVmmError(errno.EEXIST, vm.bus.register_pio, 0x102, 1)
            self.assertVmmError(errno.ENOENT, vm.bus.unregister, libvmm.Space.PIO, 0x500)
        self.assertVmmError(errno.ENODEV, libvmm.VM, kvm_path="/dev/null")

    def test_detail_is_per_thread(self):
        # The failure's message is read on the failing thread, whatever other threads do.
        errs = {}

        def fail(i):
            with libvmm.VM() as vm:
                vm.memory.add_region(0, 1 << 20)
                for _ in range(50):
                    try:
                        vm.memory.add_region(0x1000 * (i + 1), 4096)
                    except VmmError as e:
                        errs.setdefault(i, set()).add(e.detail)
        ts = [threading.Thread(target=fail, args=(i,)) for i in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(len(errs), 4)
        for i, details in errs.items():
            self.assertEqual(len(details), 1, details)
            self.assertIn(f"{0x1000 * (i + 1):#x}", next(iter(details)))

    def test_closed_vm_raises_instead_of_crashing(self):
        vm = libvmm.VM()
        vm.memory.add_region(0, 1 << 20)
        cpu = vm.create_vcpu()
        vm.close()
        vm.close()  # twice is fine
        self.assertTrue(vm.closed)
        for fn in (lambda: vm.memory.read(0, 1), lambda: cpu.regs, lambda: cpu.run(),
                   lambda: vm.create_vcpu(), lambda: vm.bus.register_pio(1, 1)):
            with self.assertRaises(ValueError):
                fn()
        cpu.kick()  # a no-op, not a crash


class RunControlTest(KvmTestCase):
    def spin_vm(self):
        """snap_count counts forever; with a huge reporting interval it never exits."""
        g = GuestVM("snap_count")
        g.vm.memory.write_u64(g.sym("cfg_every"), 1 << 62)
        return g

    def test_timeout_and_kick(self):
        with self.spin_vm() as g:
            with self.assertRaises(TimeoutError):
                g.cpu.run(timeout=0.3)
            # Running again works and a kick from another thread stops it.
            t = threading.Timer(0.3, g.cpu.kick)
            t.start()
            x = g.cpu.run(timeout=20)
            t.join()
            self.assertEqual(x.reason, ExitReason.KICK)
            counter = g.vm.memory.read_u64(g.sym("counter"))
            self.assertGreater(counter, 0)

    def test_request_stop(self):
        with self.spin_vm() as g:
            threading.Timer(0.2, g.vm.request_stop, args=(libvmm.SYSTEM_EVENT_SHUTDOWN,)).start()
            x = g.cpu.run(timeout=20)
            self.assertEqual(x.reason, ExitReason.SYSTEM_EVENT)
            self.assertEqual(x.system_type, libvmm.SYSTEM_EVENT_SHUTDOWN)
            self.assertEqual(g.vm.stop_requested, libvmm.SYSTEM_EVENT_SHUTDOWN)
            g.vm.clear_stop()
            self.assertEqual(g.vm.stop_requested, 0)

    def test_close_while_running_in_another_thread(self):
        g = self.spin_vm()
        seen = []

        def runner():
            try:
                while True:
                    seen.append(g.cpu.run().reason)
            except ValueError:
                seen.append("closed")
        t = threading.Thread(target=runner)
        t.start()
        threading.Event().wait(0.3)
        g.close()
        t.join(10)
        self.assertFalse(t.is_alive())
        self.assertEqual(seen[-1], "closed")

    def test_fault_exit(self):
        # A RIP outside the identity map: a page fault, reported through the library's
        # fault IDT with the faulting address and CPL.
        with GuestVM("hello") as g:
            g.cpu.set_regs(rip=0x7fff00000000)
            x = g.cpu.run(timeout=20)
            self.assertEqual(x.reason, ExitReason.FAULT)
            self.assertEqual(x.vector, 14)
            self.assertEqual(x.cr2, 0x7fff00000000)
            self.assertEqual(x.cs & 3, 3)
