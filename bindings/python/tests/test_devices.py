"""Virtio devices through the virtio-mmio transport, with the loop on its own thread."""
import errno
import tempfile
import threading
import time

import libvmm
from libvmm import ExitReason

from support import GuestVM, KvmTestCase

BASE, GSI = 0xD0000000, 5


def wait_for(pred, timeout=10):
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


class ConsoleTest(KvmTestCase):
    def test_echo_through_callbacks(self):
        out = bytearray()
        threads = set()

        def output(data):
            threads.add(threading.get_ident())
            out.extend(data)
        with GuestVM("vcon_echo") as g:
            con = libvmm.Console(output, cols=100, rows=40)
            self.assertEqual(con.input(b"early "), 6)  # buffered until the driver is up
            t = g.vm.attach(con, BASE, GSI)
            self.assertIs(t.device, con)
            self.assertTrue(g.vm.loop.running)
            self.assertEqual(t.cmdline, f"virtio_mmio.device=4K@{BASE:#x}:{GSI}")
            con.input(b"bird, hello python\n")
            g.cpu.set_regs(rdi=1)
            x = g.cpu.run(timeout=30)
            self.assertEqual((x.reason, x.code), (ExitReason.GUEST, 0x100), g.console())
            want = b"hello from guest\nEARLY BIRD, HELLO PYTHON\n"
            self.assertTrue(wait_for(lambda: bytes(out) == want), bytes(out))
            self.assertNotIn(threading.get_ident(), threads)  # the loop thread called it
            self.assertTrue(t.status & libvmm.STATUS_DRIVER_OK)
            self.assertEqual(t.error, "")
            self.assertGreater(t.stats()["notifies"], 0)
            res = g.sym("res")
            self.assertEqual(g.vm.memory.read(res + 4, 4), (100).to_bytes(2, "little") +
                             (40).to_bytes(2, "little"))
        with self.assertRaises(ValueError):
            con.input(b"x")  # the VM (and its device) is gone

    def test_output_callback_exception_reaches_python(self):
        def output(data):
            raise RuntimeError(f"back end failed on {data!r}")
        with GuestVM("vcon_echo") as g:
            g.vm.attach(libvmm.Console(output), BASE, GSI)
            g.cpu.set_regs(rdi=2)
            g.vm.memory.write_u32(g.sym("res") + 24, 100)  # res.flood_len: 100 bytes
            with self.assertRaises(RuntimeError) as cm:
                g.cpu.run(timeout=30)
                g.vm.raise_pending()
            self.assertIn("back end failed", str(cm.exception))


class BlkTest(KvmTestCase):
    def test_read_write_disk(self):
        sectors = 2048
        with tempfile.NamedTemporaryFile() as img:
            img.write(b"\x11" * sectors * 512)
            img.flush()
            with GuestVM("vblk_guest") as g:
                blk = libvmm.Blk(img.name, serial="libvmm-test-disk-01")
                g.vm.attach(blk, BASE, GSI)
                g.cpu.set_regs(rdi=1)
                x = g.cpu.run(timeout=60)
                self.assertEqual((x.reason, x.code), (ExitReason.GUEST, 0x100), g.console())
                st = blk.stats()
                self.assertEqual((st["writes"], st["reads"], st["flushes"], st["get_ids"]),
                                 (8, 3, 1, 1))
                self.assertEqual(st["bytes_written"], 64 * 512)
            data = open(img.name, "rb").read()

            def pattern(s, i):
                return (s * 31 + i * 7 + (i >> 8)) & 0xFF
            for sec in (0, 8, 20, 41, 71, 72, 2047):
                mine = 8 <= sec < 72
                zero = 16 <= sec < 24 or 40 <= sec < 44
                want = bytes(0x11 if not mine else 0 if zero else pattern(sec, i)
                             for i in range(512))
                self.assertEqual(data[sec * 512:(sec + 1) * 512], want, f"sector {sec}")

    def test_missing_image(self):
        with self.assertRaises(libvmm.VmmError) as cm:
            libvmm.Blk("/nonexistent/disk.img")
        self.assertEqual(cm.exception.errno, errno.ENOENT)


class RngTest(KvmTestCase):
    def test_entropy_reaches_the_guest(self):
        with GuestVM("virtio_rng") as g:
            t = g.vm.attach(libvmm.Rng(), BASE, GSI)
            g.cpu.set_regs(rdi=1)
            x = g.cpu.run(timeout=30)
            self.assertEqual((x.reason, x.code), (ExitReason.GUEST, 0x100), g.console())
            results = g.sym("results")
            for i in range(4):  # the four 256-byte requests
                r = g.vm.memory.read(results + 16 * i, 16)
                length = int.from_bytes(r[0:4], "little")
                nonzero = int.from_bytes(r[4:8], "little")
                self.assertEqual(length, 256)
                self.assertGreater(nonzero, 200)
            self.assertGreater(t.stats()["interrupts"], 0)

    def test_unattached_device_is_freed(self):
        for _ in range(100):
            libvmm.Rng().close()
            libvmm.Console(lambda d: None)  # freed by the garbage collector
