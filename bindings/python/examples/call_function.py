#!/usr/bin/env python3
"""call_function.py: call functions of a guest program in a sandbox, from Python.

The guest (tests/guest/funcs.c, built with the guest SDK) exports add(), upper() and a
function that calls back into the host; every call starts from the snapshot taken after
the guest's init. Usage: call_function.py [funcs.elf]  (default: build it with cc)
"""
import sys
import tempfile

import libvmm


def build_guest(tmp):
    sys.path.insert(0, __file__.rsplit("/", 2)[0] + "/tests")
    import support  # the tests' SDK build helper
    return support.build_sdk_guest([support.HERE / "guest" / "funcs.c"], tmp, "funcs")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        elf = sys.argv[1] if len(sys.argv) > 1 else build_guest(tmp)

        with libvmm.Sandbox(elf, deadline=5,
                            host_functions={"twice": lambda sb, x: 2 * x}) as sb:
            print("add(2, 3) =", sb.call("add", 2, 3))
            ret, (text, _) = sb.call("upper", inputs=[b"hello, sandbox"], outputs=[64, 20])
            print("upper(b'hello, sandbox') =", text)
            print("twice_on_host(21) =", sb.call("twice_on_host", 21))
            print("count() three times =", [sb.call("count") for _ in range(3)],
                  "(reset after every call)")
            try:
                sb.call("crash", 0x10)
            except libvmm.VmmError as e:
                print("crash(0x10) ->", e)
            print("and after that, add(40, 2) =", sb.call("add", 40, 2))


if __name__ == "__main__":
    main()
