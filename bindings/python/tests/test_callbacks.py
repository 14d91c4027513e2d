"""Python callbacks called from C: bus handlers on the vCPU thread, exceptions that must
not unwind through C, and the thunks' lifetime."""
import gc
import threading

import libvmm
from libvmm import ExitReason, Space

from support import GuestVM, KvmTestCase

TEST_PORT = 0x100
TEST_MMIO = 0xD0000000


def pattern_value(seed, offset, size):
    return int.from_bytes(bytes((seed + (offset + i) * 0x1D) & 0xFF for i in range(size)),
                          "little")


class BusTest(KvmTestCase):
    def attach_devices(self, g, log):
        def make(space, seed):
            def read(offset, size):
                log.append((space, "r", offset, size, threading.get_ident()))
                return pattern_value(seed, offset, size)

            def write(offset, size, value):
                log.append((space, "w", offset, size, value))
            return read, write
        r, w = make("pio", 0x40)
        g.vm.bus.register_pio(TEST_PORT, 8, read=r, write=w)
        r, w = make("mmio", 0x80)
        g.vm.bus.register_mmio(TEST_MMIO, 0x1000, read=r, write=w)

    def test_pio_and_mmio_handlers(self):
        log = []
        with GuestVM("pio_mmio") as g:
            self.attach_devices(g, log)
            gc.collect()  # the thunks live as long as their registration
            x = g.cpu.run(timeout=20)
            self.assertEqual((x.reason, x.code), (ExitReason.GUEST, 0x100 | 31))
            writes = [e[:5] for e in log if e[1] == "w"]
            self.assertEqual(writes, [
                ("pio", "w", 0, 1, 0xA5), ("pio", "w", 2, 2, 0xBEEF),
                ("pio", "w", 4, 4, 0xDEADBEEF),
                ("mmio", "w", 0x10, 1, 0x5A), ("mmio", "w", 0x20, 2, 0x1234),
                ("mmio", "w", 0x40, 4, 0x89ABCDEF), ("mmio", "w", 0x80, 8, 0x0123456789ABCDEF)])
            # Handlers ran on the thread that called run().
            self.assertEqual({e[4] for e in log if e[1] == "r"}, {threading.get_ident()})
            want = "pio {:#x} {:#x} {:#x}\nmmio {:#x} {:#x} {:#x} {:#x}\n".format(
                pattern_value(0x40, 1, 1), pattern_value(0x40, 2, 2), pattern_value(0x40, 4, 4),
                pattern_value(0x80, 0x11, 1), pattern_value(0x80, 0x22, 2),
                pattern_value(0x80, 0x44, 4), pattern_value(0x80, 0x88, 8))
            self.assertEqual(g.console().decode(), want)

    def test_handler_exception_is_raised_by_run(self):
        class Boom(Exception):
            pass

        calls = []

        def bad_read(offset, size):
            calls.append(offset)
            raise Boom("device failed")
        with GuestVM("pio_mmio") as g:
            g.vm.bus.register_pio(TEST_PORT, 8, read=bad_read)
            with self.assertRaises(Boom):
                g.cpu.run(timeout=20)
            self.assertEqual(calls, [1])  # the vCPU stopped at the first failing read
            # The VM stays usable: with a working handler the guest finishes.
            g.vm.bus.unregister(Space.PIO, TEST_PORT)
            g.vm.bus.register_pio(TEST_PORT, 8, read=lambda o, s: 0)
            x = g.cpu.run(timeout=20)
            self.assertEqual(x.reason, ExitReason.GUEST)

    def test_bad_return_value_is_an_error_not_a_crash(self):
        with GuestVM("pio_mmio") as g:
            g.vm.bus.register_pio(TEST_PORT, 8, read=lambda o, s: "not an int")
            with self.assertRaises(ValueError):
                g.cpu.run(timeout=20)

    def test_dispatch_from_python(self):
        seen = []
        with libvmm.VM() as vm:
            vm.bus.register_mmio(0xE0000000, 0x100, read=lambda o, s: 0x1122334455667788,
                                 write=lambda o, s, v: seen.append((o, s, v)))
            self.assertEqual(vm.bus.read(Space.MMIO, 0xE0000010, 4), 0x55667788)
            vm.bus.write(Space.MMIO, 0xE0000020, 2, 0xABCD)
            self.assertEqual(seen, [(0x20, 2, 0xABCD)])

            def boom(o, s):
                raise KeyError("x")
            vm.bus.register_pio(0x300, 1, read=boom)
            with self.assertRaises(KeyError):
                vm.bus.read(Space.PIO, 0x300, 1)
