"""Function sandboxes: calls, buffers, host functions, resets and errors, on a guest
built with the guest SDK from tests/guest/funcs.c."""
import errno
import tempfile

from libvmm import Sandbox, VmmError, _lib

import support
from support import KvmTestCase

_elf = None
_tmp = None


def funcs_elf():
    global _elf, _tmp
    if _elf is None:
        _tmp = tempfile.TemporaryDirectory()
        _elf = support.build_sdk_guest([support.HERE / "guest" / "funcs.c"], _tmp.name, "funcs")
    return _elf


def tearDownModule():
    if _tmp is not None:
        _tmp.cleanup()


class SandboxTest(KvmTestCase):
    def setUp(self):
        super().setUp()
        if not _lib.has("vmm_sandbox_create"):
            self.skipTest("this libvmm.so has no sandbox (vmm_sandbox_create)")
        self.out = []
        self.host_calls = []

        def twice(sb, x):
            self.host_calls.append(("twice", x))
            return 2 * x

        def by_id(sb, x, y):
            return x * y

        def total(sb, ptr, n):
            return sum(sb.read(ptr, n))
        self.sb = Sandbox(funcs_elf(), deadline=10,
                          host_functions=[(1, "twice", twice), (7, None, by_id),
                                          (8, "sum", total)],
                          output=self.out.append)

    def tearDown(self):
        self.sb.close()

    def test_calls(self):
        sb = self.sb
        self.assertEqual(sb.call("add", 2, 3), 5)
        self.assertEqual(sb.call("add", (1 << 64) - 1, 2), 1)  # 64-bit wrap
        self.assertEqual(sb.call("sum6", 1, 1, 1, 1, 1, 1), 21)
        self.assertEqual(sb.call("square", 9), 81)  # init ran before the snapshot
        self.assertEqual(sb.call("nop"), 0)

    def test_every_call_starts_from_the_snapshot(self):
        sb = self.sb
        self.assertEqual([sb.call("count") for _ in range(3)], [1, 1, 1])
        self.assertEqual(sb.call("count", keep_state=True), 2)
        self.assertEqual(sb.call("count", keep_state=True), 3)
        self.assertEqual(sb.call("count"), 1)
        self.assertGreaterEqual(sb.stats()["resets"], 2)

    def test_buffers(self):
        ret, (up, length) = self.sb.call("upper", inputs=[b"hello, sandbox!"], outputs=[64, 20])
        self.assertEqual((ret, up, length), (15, b"HELLO, SANDBOX!", b"15"))
        big = bytes(range(97, 123)) * 1000
        ret, (up, _) = self.sb.call("upper", inputs=[memoryview(big)], outputs=[len(big), 0])
        self.assertEqual(up, big.upper())
        with self.assertRaises(VmmError) as cm:
            self.sb.call("upper", inputs=[b"x" * (2 << 20)], outputs=[16])
        self.assertEqual(cm.exception.errno, errno.E2BIG)

    def test_host_functions_and_output(self):
        sb = self.sb
        self.assertEqual(sb.call("twice_on_host", 21), 42)
        self.assertEqual(self.host_calls, [("twice", 21)])
        self.assertEqual(sb.call("by_id", 3), 3000)
        self.assertEqual(sb.call("sum_on_host"), sum(b"sum these bytes"))
        self.assertEqual(sb.call("say"), 1)
        self.assertEqual(b"".join(self.out), b"hello from the sandbox\n")
        self.assertGreaterEqual(sb.stats()["host_calls"], 3)

    def test_host_function_exception_is_reraised(self):
        class Refused(Exception):
            pass

        def twice(sb, x):
            raise Refused(f"no for {x}")
        with Sandbox(funcs_elf(), host_functions={"twice": twice}) as sb:
            with self.assertRaises(Refused) as cm:
                sb.call("twice_on_host", 5)
            self.assertIsInstance(cm.exception.__cause__, VmmError)
            self.assertEqual(sb.call("add", 1, 1), 2)  # still usable

    def test_guest_errors_leave_the_sandbox_usable(self):
        sb = self.sb
        with self.assertRaises(VmmError) as cm:
            sb.call("crash", 0x10)
        self.assertEqual(cm.exception.errno, errno.EFAULT)
        self.assertIn("14", cm.exception.detail)  # the message names the vector
        with self.assertRaises(VmmError) as cm:
            sb.call("spin", deadline=0.2)
        self.assertEqual(cm.exception.errno, errno.ETIMEDOUT)
        with self.assertRaises(VmmError) as cm:
            sb.call("give_up")
        self.assertEqual(cm.exception.errno, errno.ECANCELED)
        self.assertIn("gave up on purpose", cm.exception.detail)
        with self.assertRaises(VmmError) as cm:
            sb.call("no_such_function")
        self.assertEqual(cm.exception.errno, errno.ENOENT)
        self.assertEqual(sb.call("add", 40, 2), 42)
        self.assertGreaterEqual(sb.stats()["errors"], 3)

    def test_memory_and_symbols(self):
        sb = self.sb
        add = sb.symbol("add")
        self.assertGreaterEqual(add, 0x100000)
        self.assertEqual(len(sb.read(add, 16)), 16)
        with self.assertRaises(VmmError) as cm:
            sb.read(0x10, 8)
        self.assertEqual(cm.exception.errno, errno.EFAULT)
        self.assertEqual(sb.regs.rip >= 0x100000, True)

    def test_bad_program(self):
        with self.assertRaises(VmmError) as cm:
            Sandbox(support.guest("hello"))  # not an SDK program
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        self.assertTrue(cm.exception.detail)

    def test_many_sandboxes(self):
        fds = support.open_fds()
        for _ in range(20):
            with Sandbox(funcs_elf()) as sb:
                self.assertEqual(sb.call("add", 1, 2), 3)
        self.assertEqual(support.open_fds(), fds)
