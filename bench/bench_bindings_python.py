#!/usr/bin/env python3
"""Python bindings overhead: the same loop driven from Python (libvmm package, ctypes)
and from C, measured side by side in one run, reported as a ratio.

  sandbox call    vmm_sandbox_call of a guest function that returns at once (one VM exit
                  per call) and of add(a, b), with the reset between calls (the default)
                  and without it (keep_state): Sandbox.call() vs vmm_sandbox_call().
  vcpu run        a guest (tests/guests/snap_count.c with cfg_every = 1) that writes the
                  exit port on every loop iteration: VCPU.run() vs vmm_vcpu_run().

Both sides run interleaved rounds; each round's per-call time is the mean over `--calls`
calls, and the report gives the median round. Absolute times on our nested-KVM machines
are dominated by the VM exit (~60 us from CPL 3, see PLATFORM.md), so the ratio is what
to look at: it shows what Python adds per call.

Usage: bench_bindings_python.py [--build DIR] [--calls N] [--rounds N]
  (DIR: the CMake build with libvmm.so.0 and tests/guests; default $LIBVMM_BUILD_DIR or
  ./build). The bindings are imported from bindings/python/src unless installed.
"""
import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]

C_SOURCE = r"""
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <libvmm/libvmm.h>
#include <libvmm/sandbox.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static int die(const char *what, int r)
{
	fprintf(stderr, "%s: %s (%s)\n", what, vmm_strerror(r), vmm_last_error());
	return 1;
}

/* run <snap_count.elf> <cfg_every gpa> <calls> <rounds>: ns per vmm_vcpu_run, per round */
static int bench_run(char **argv)
{
	uint64_t every_gpa = strtoull(argv[3], 0, 0);
	long calls = atol(argv[4]), rounds = atol(argv[5]);
	vmm_vm *vm;
	vmm_vcpu *cpu;
	vmm_elf_info elf;
	int r;
	if ((r = vmm_vm_create(&vm, NULL)))
		return die("vm", r);
	vmm_mem_region_opts ro = VMM_MEM_REGION_OPTS_INIT;
	ro.len = 32u << 20;
	uint64_t one = 1;
	if ((r = vmm_mem_add_region(vmm_vm_mem(vm), &ro)) ||
	    (r = vmm_elf_load_file(vmm_vm_mem(vm), argv[2], &elf)) ||
	    (r = vmm_mem_write(vmm_vm_mem(vm), every_gpa, &one, 8)) ||
	    (r = vmm_vcpu_create(&cpu, vm, NULL)))
		return die("setup", r);
	vmm_long_mode_opts lm = VMM_LONG_MODE_OPTS_INIT;
	lm.cpl = 3;
	lm.entry = elf.entry;
	lm.stack = 0x800000;
	if ((r = vmm_vcpu_setup_long_mode(cpu, &lm)))
		return die("long mode", r);
	vmm_exit e;
	for (long i = 0; i < 100; i++)
		if ((r = vmm_vcpu_run(cpu, &e)) || e.reason != VMM_EXIT_GUEST)
			return die("warm-up run", r ? r : -EIO);
	for (long k = 0; k < rounds; k++) {
		double t0 = now();
		for (long i = 0; i < calls; i++)
			if ((r = vmm_vcpu_run(cpu, &e)) || e.reason != VMM_EXIT_GUEST)
				return die("run", r ? r : -EIO);
		printf("%.1f\n", (now() - t0) / calls * 1e9);
		fflush(stdout);
	}
	vmm_vm_destroy(vm);
	return 0;
}

/* sandbox <funcs.elf> <fn> <nargs> <calls> <rounds> <keep_state> */
static int bench_sandbox(char **argv)
{
	const char *fn = argv[3];
	size_t nargs = (size_t)atol(argv[4]);
	long calls = atol(argv[5]), rounds = atol(argv[6]);
	vmm_sandbox_call_opts co = VMM_SANDBOX_CALL_OPTS_INIT;
	co.flags = atoi(argv[7]) ? VMM_SANDBOX_CALL_KEEP_STATE : 0;
	vmm_sandbox_opts o = VMM_SANDBOX_OPTS_INIT;
	o.elf_path = argv[2];
	vmm_sandbox *sb;
	int r;
	if ((r = vmm_sandbox_create(&sb, &o)))
		return die("sandbox", r);
	uint64_t args[2] = { 2, 3 }, ret;
	for (long i = 0; i < 100; i++)
		if ((r = vmm_sandbox_call(sb, fn, args, nargs, &co, &ret)))
			return die("warm-up call", r);
	for (long k = 0; k < rounds; k++) {
		double t0 = now();
		for (long i = 0; i < calls; i++)
			if ((r = vmm_sandbox_call(sb, fn, args, nargs, &co, &ret)))
				return die("call", r);
		printf("%.1f\n", (now() - t0) / calls * 1e9);
		fflush(stdout);
	}
	vmm_sandbox_destroy(sb);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 5 && !strcmp(argv[1], "run"))
		return bench_run(argv);
	if (argc > 7 && !strcmp(argv[1], "sandbox"))
		return bench_sandbox(argv);
	fprintf(stderr, "usage: run|sandbox ...\n");
	return 2;
}
"""


def build_c(build, tmp, with_sandbox):
    src = pathlib.Path(tmp) / "bench_c.c"
    text = C_SOURCE
    if not with_sandbox:  # a library (and headers) without sandboxes: run mode only
        text = text.replace("#include <libvmm/sandbox.h>\n", "")
        start = text.index("/* sandbox <funcs.elf>")
        end = text.index("int main(")
        text = text[:start] + text[end:].replace(
            '\tif (argc > 7 && !strcmp(argv[1], "sandbox"))\n\t\treturn bench_sandbox(argv);\n', "")
    src.write_text(text)
    exe = pathlib.Path(tmp) / "bench_c"
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-O2", "-std=gnu11", f"-I{ROOT / 'include'}", str(src), "-o", str(exe),
                    f"-L{build}", "-lvmm", f"-Wl,-rpath,{build}"], check=True)
    return exe


def c_rounds(exe, args, rounds):
    out = subprocess.run([str(exe), *map(str, args)], check=True, capture_output=True,
                         text=True).stdout.split()
    assert len(out) == rounds, out
    return [float(x) for x in out]


def py_rounds(fn, calls, rounds):
    for _ in range(100):
        fn()
    res = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        res.append((time.perf_counter() - t0) / calls * 1e9)
    return res


def compare(name, c_fn, py_fn, rounds_total, chunks=10):
    """Interleaves C and Python in `chunks` pieces so machine noise hits both alike."""
    c, py = [], []
    per = max(1, rounds_total // chunks)
    for _ in range(chunks):
        c += c_fn(per)
        py += py_fn(per)
    cm, pm = statistics.median(c), statistics.median(py)
    print(f"{name:<34} C {cm / 1000:8.2f} us   Python {pm / 1000:8.2f} us   "
          f"ratio {pm / cm:5.3f}x   (+{(pm - cm) / 1000:.2f} us per call)")
    return pm / cm


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.environ.get("LIBVMM_BUILD_DIR", str(ROOT / "build")))
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=10)
    a = ap.parse_args()
    build = pathlib.Path(a.build).resolve()
    os.environ.setdefault("LIBVMM_LIBRARY", str(build / "libvmm.so.0"))
    try:
        import libvmm
    except ImportError:
        sys.path.insert(0, str(ROOT / "bindings" / "python" / "src"))
        import libvmm
    from libvmm import _lib
    sys.path.insert(0, str(ROOT / "bindings" / "python" / "tests"))
    import support

    has_sandbox = _lib.has("vmm_sandbox_create") and (ROOT / "include/libvmm/sandbox.h").exists()
    print(f"libvmm {libvmm.library_version()} from {os.environ['LIBVMM_LIBRARY']}, "
          f"Python {sys.version.split()[0]}; {a.rounds} rounds of {a.calls} calls; "
          "medians; per call", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        exe = build_c(build, tmp, has_sandbox)
        ratios = {}
        if has_sandbox:
            elf = support.build_sdk_guest([ROOT / "bindings/python/tests/guest/funcs.c"], tmp,
                                          "funcs")
            with libvmm.Sandbox(elf) as sb:
                call = sb.call
                for fn, args, keep in (("nop", (), 0), ("add", (2, 3), 0), ("add", (2, 3), 1)):
                    label = f"sandbox call {fn}({', '.join(map(str, args))})" + \
                        (" keep_state" if keep else "")
                    ratios[label] = compare(
                        label,
                        lambda n, fn=fn, args=args, keep=keep: c_rounds(
                            exe, ["sandbox", elf, fn, len(args), a.calls, n, keep], n),
                        lambda n, fn=fn, args=args, keep=keep: py_rounds(
                            lambda: call(fn, *args, keep_state=bool(keep)), a.calls, n),
                        a.rounds)
        else:
            print("(this libvmm has no sandbox: function calls not measured)")
        guest = support.guest("snap_count")
        every = libvmm.elf_symbol(guest, "cfg_every")
        g = support.GuestVM("snap_count")
        g.vm.memory.write_u64(every, 1)
        run = g.cpu.run
        ratios["vcpu run"] = compare(
            "vcpu run (exit port, CPL 3)",
            lambda n: c_rounds(exe, ["run", guest, every, a.calls, n], n),
            lambda n: py_rounds(run, a.calls, n), a.rounds)
        # What a ctypes call costs by itself (a getter that does no work in C), and what
        # VCPU.run adds over a bare ctypes call of vmm_vcpu_run: the Python side's share
        # of the numbers above, free of the VM-exit noise.
        L, h = _lib.lib(), g.vm._handle
        trivial = statistics.median(py_rounds(lambda: L.vmm_vm_exit_port(h), 20000, 5))
        import ctypes
        from libvmm import _structs
        e = _structs.vmm_exit()
        pe, ch = ctypes.byref(e), g.cpu._handle
        raw, wrapped = [], []
        for _ in range(a.rounds):
            raw += py_rounds(lambda: L.vmm_vcpu_run(ch, pe), a.calls // 4, 1)
            wrapped += py_rounds(run, a.calls // 4, 1)
        print(f"ctypes call of a trivial libvmm function: {trivial / 1000:.2f} us; "
              f"VCPU.run() vs a bare ctypes vmm_vcpu_run: "
              f"+{(statistics.median(wrapped) - statistics.median(raw)) / 1000:.2f} us")
        g.close()
    return ratios


if __name__ == "__main__":
    main()
