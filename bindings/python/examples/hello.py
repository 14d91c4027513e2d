#!/usr/bin/env python3
"""hello.py: examples/hello.c in Python. Loads the freestanding hello guest into 32 MiB
of RAM, gives it a message to checksum, runs it in 64-bit mode at CPL 3, prints what it
writes to port 0xE9 and its exit code (the CRC-32 of the message).

Usage: hello.py [guest.elf]   (default: $LIBVMM_BUILD_DIR/tests/guests/hello.elf)
"""
import os
import sys

import libvmm

RAM_SIZE = 32 << 20
INPUT_GPA = 0x400000  # the guest reads a u32 length and the bytes here


def main():
    guest = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.environ.get("LIBVMM_BUILD_DIR", "build"), "tests", "guests", "hello.elf")
    msg = b"Hello from the host, checksum me!"
    try:
        with libvmm.VM() as vm:
            vm.memory.add_region(0, RAM_SIZE)
            vm.bus.register_pio(0xE9, 1, write=lambda off, size, value:
                                sys.stdout.write(chr(value & 0xFF)))
            info = vm.load_elf(guest)
            vm.memory.write_u32(INPUT_GPA, len(msg))
            vm.memory.write(INPUT_GPA + 4, msg)
            cpu = vm.create_vcpu()
            cpu.setup_long_mode(info.entry, stack=0x800000, cpl=3)
            exit = cpu.run(timeout=60)
    except libvmm.VmmError as e:
        sys.exit(f"hello: {e}")
    sys.stdout.flush()
    if exit.reason == libvmm.ExitReason.GUEST:
        print(f'guest exited with code {exit.code:#x} (the CRC-32 of "{msg.decode()}")')
        return 0
    if exit.reason == libvmm.ExitReason.FAULT:
        sys.exit(f"hello: guest fault: vector {exit.vector} at rip {exit.rip:#x}")
    sys.exit(f"hello: unexpected exit {exit}")


if __name__ == "__main__":
    sys.exit(main())
