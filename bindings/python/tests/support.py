"""Shared helpers of the binding tests: where the build is, the guests, a VM like the C
test harness builds (tests/kvm/harness), and the rule that nothing is skipped where
/dev/kvm exists."""
import os
import pathlib
import shutil
import subprocess
import threading
import unittest

import libvmm

HERE = pathlib.Path(__file__).resolve().parent
SOURCE_DIR = pathlib.Path(os.environ.get("LIBVMM_SOURCE_DIR", HERE.parents[2]))
BUILD_DIR = pathlib.Path(os.environ.get("LIBVMM_BUILD_DIR", SOURCE_DIR / "build"))
GUEST_DIR = BUILD_DIR / "tests" / "guests"
INCLUDE_DIR = SOURCE_DIR / "include"

CONSOLE_PORT = 0xE9
STACK_TOP = 0x800000
RAM = 32 << 20


def kvm_usable():
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def require_kvm(test):
    if not kvm_usable():
        test.skipTest("/dev/kvm is not usable")


def guest(name):
    p = GUEST_DIR / f"{name}.elf"
    if not p.exists():
        raise FileNotFoundError(f"{p}: guest not built (set LIBVMM_BUILD_DIR to the CMake build)")
    return p


def cc():
    c = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not c:
        raise FileNotFoundError("no C compiler (cc) for the test's helper programs")
    return c


class GuestVM:
    """A VM with RAM at 0, the console on port 0xE9, a test guest loaded and vCPU 0 in
    long mode at its entry (like kt_create in tests/kvm/harness/harness.c)."""

    def __init__(self, name, *, cpl=3, vcpus=1, ram=RAM, **vm_opts):
        self.vm = libvmm.VM(**vm_opts)
        self.path = guest(name)
        self.image = self.path.read_bytes()
        self._console = bytearray()
        self._lock = threading.Lock()
        self.vm.memory.add_region(0, ram, name="test-ram")
        self.vm.bus.register_pio(CONSOLE_PORT, 1, write=self._on_console)
        self.info = self.vm.load_elf(self.path)
        self.cpus = []
        for i in range(vcpus):
            c = self.vm.create_vcpu(i)
            c.setup_long_mode(self.info.entry, STACK_TOP - i * 0x80000, cpl=cpl,
                              system_area=i * libvmm.LONG_MODE_SYSTEM_AREA_SIZE)
            self.cpus.append(c)
        self.cpu = self.cpus[0]

    def _on_console(self, offset, size, value):
        with self._lock:
            self._console += value.to_bytes(8, "little")[:size]

    def console(self):
        with self._lock:
            return bytes(self._console)

    def sym(self, name):
        return libvmm.elf_symbol(self.image, name)

    def close(self):
        self.vm.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def build_sdk_guest(sources, out_dir, name):
    """Builds a sandbox guest program with the guest SDK (sdk/guest), the way
    libvmm_add_guest does, into out_dir/name.elf."""
    sdk = SOURCE_DIR / "sdk" / "guest"
    compiler = cc()
    is_clang = b"clang" in subprocess.run([compiler, "--version"], capture_output=True).stdout
    cflags = ["-ffreestanding", "-fno-pic", "-fno-pie", "-mno-red-zone", "-fno-stack-protector",
              "-fno-asynchronous-unwind-tables", "-fcf-protection=none", "-O2", "-g",
              "-Wall", "-Wextra", f"-I{sdk / 'include'}"]
    if not is_clang:
        cflags.append("-fno-tree-loop-distribute-patterns")
    ldflags = ["-nostdlib", "-static", f"-Wl,-T,{sdk / 'vmm_guest.ld'}", "-Wl,--build-id=none",
               "-Wl,-z,max-page-size=4096", "-Wl,-z,noexecstack"]
    if not is_clang:
        ldflags.append("-no-pie")
    objs = []
    for i, src in enumerate(list(sources) + [sdk / "src" / "runtime.c", sdk / "src" / "start.S"]):
        obj = pathlib.Path(out_dir) / f"{i}_{pathlib.Path(src).name}.o"
        subprocess.run([compiler, *cflags, "-c", str(src), "-o", str(obj)], check=True)
        objs.append(str(obj))
    elf = pathlib.Path(out_dir) / f"{name}.elf"
    subprocess.run([compiler, *ldflags, *objs, "-o", str(elf)], check=True)
    return elf


class KvmTestCase(unittest.TestCase):
    """Skips without /dev/kvm (which tests/run.py turns into a failure where it exists)."""

    def setUp(self):
        require_kvm(self)
