"""The examples run and print what they should."""
import subprocess
import sys
import zlib

import libvmm
from libvmm import _lib

import support
from support import KvmTestCase

EXAMPLES = support.HERE.parent / "examples"


class ExamplesTest(KvmTestCase):
    def run_example(self, *args):
        return subprocess.run([sys.executable, *map(str, args)], capture_output=True,
                              text=True, timeout=120)

    def test_hello(self):
        p = self.run_example(EXAMPLES / "hello.py", support.guest("hello"))
        msg = "Hello from the host, checksum me!"
        crc = zlib.crc32(msg.encode())
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "primes: 2 3 5 7 11 13 17 19 23 29 31 37 41 43 47 53 59 61 67 71\n"
                         f"crc32 of {len(msg)} bytes: {crc:#x}\n"
                         f'guest exited with code {crc:#x} (the CRC-32 of "{msg}")\n')
        p = self.run_example(EXAMPLES / "hello.py", "/nonexistent/guest.elf")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("hello: vmm_elf_load_file: [ENOENT]", p.stderr)

    def test_call_function(self):
        if not _lib.has("vmm_sandbox_create"):
            self.skipTest("this libvmm.so has no sandbox (vmm_sandbox_create)")
        p = self.run_example(EXAMPLES / "call_function.py")
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.splitlines()
        self.assertEqual(lines[0], "add(2, 3) = 5")
        self.assertEqual(lines[1], "upper(b'hello, sandbox') = b'HELLO, SANDBOX'")
        self.assertEqual(lines[2], "twice_on_host(21) = 42")
        self.assertIn("[1, 1, 1]", lines[3])
        self.assertIn("[EFAULT]", lines[4])
        self.assertEqual(lines[5], "and after that, add(40, 2) = 42")

    def test_library_version(self):
        self.assertEqual(libvmm.library_version(), "0.1.0")
