"""Thousands of create/destroy cycles leave no file descriptors, memory or threads
behind, with and without close(), callbacks and devices included."""
import gc
import threading

import libvmm

import support
from support import KvmTestCase


def one_vm(explicit_close=True, devices=False):
    # Without an interrupt controller a KVM VM is created and destroyed ~10x faster on
    # our nested hosts (3 ms instead of 30, in C as well); devices need one.
    vm = libvmm.VM(irqchip="kernel" if devices else "none")
    vm.memory.add_region(0, 2 << 20)
    vm.memory.write(0x1000, b"leak check")
    vm.bus.register_pio(0xE9, 1, write=lambda o, s, v: None)
    vm.bus.register_mmio(0xE0000000, 0x1000, read=lambda o, s: vm.memory.read_u32(0))
    cpu = vm.create_vcpu()
    cpu.set_regs(rax=1)
    vm.memory.view(0, 4096)[0] = 1
    if devices:
        vm.attach(libvmm.Console(lambda d: None), 0xD0000000, 5)
        vm.attach(libvmm.Rng(), 0xD0001000, 6)
    if explicit_close:
        vm.close()
    # else: dropped; the reference cycle (VM -> bus -> thunk -> lambda -> VM) is
    # collected by the garbage collector, whose __del__ closes the VM.


class LeakTest(KvmTestCase):
    def cycles(self, n, **kw):
        for _ in range(n):
            one_vm(**kw)
        gc.collect()

    def test_create_destroy_cycles(self):
        self.cycles(100)  # warm up: allocator arenas, lazily created ctypes types
        self.cycles(50, explicit_close=False)
        self.cycles(10, devices=True)
        fds, rss, threads = support.open_fds(), support.rss_kib(), threading.active_count()
        self.cycles(2000)
        self.cycles(500, explicit_close=False)
        self.cycles(100, devices=True)
        self.assertEqual(support.open_fds(), fds)
        self.assertEqual(threading.active_count(), threads)
        grown = support.rss_kib() - rss
        # A leak of one guest page, one vCPU or one KVM VM per cycle would be > 10 MiB.
        self.assertLess(grown, 8 * 1024, f"RSS grew by {grown} KiB over 2600 VMs")

    def test_run_cycles(self):
        path = support.guest("hello")
        data = b"123456789"
        for _ in range(2):  # warm up
            with support.GuestVM("hello", irqchip="none") as g:
                g.cpu.run(timeout=20)
        fds, rss = support.open_fds(), support.rss_kib()
        for _ in range(300):
            with support.GuestVM("hello", irqchip="none") as g:
                g.vm.memory.write_u32(0x400000, len(data))
                g.vm.memory.write(0x400004, data)
                self.assertEqual(g.cpu.run(timeout=20).code, 0xCBF43926)
        gc.collect()
        self.assertEqual(support.open_fds(), fds)
        self.assertLess(support.rss_kib() - rss, 8 * 1024)
        self.assertTrue(path.exists())
