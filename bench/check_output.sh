#!/bin/sh
# Runs bench_core ("$@") and checks the format of its output: one line per figure,
# "<name> lib=<v>us raw=<v>us ratio=<r>", every other line a '#' comment. Timings are
# never asserted (the machines are shared and noisy). Exit 77 (skip) passes through.
out=$("$@")
rc=$?
printf '%s\n' "$out"
[ "$rc" -eq 77 ] && exit 77
if [ "$rc" -ne 0 ]; then
	echo "FAIL: bench_core exited with $rc"
	exit 1
fi
num='[0-9]+(\.[0-9]+)?'
fail=0
for name in vm_create_to_first_insn vm_destroy vm_create_default_to_first_insn pio_exit_cpl0 pio_exit_cpl3 \
	    mmio_exit_cpl0 mmio_exit_cpl3 irqfd_roundtrip; do
	n=$(printf '%s\n' "$out" | grep -cE "^$name lib=${num}us raw=${num}us ratio=${num}\$")
	if [ "$n" != 1 ]; then
		echo "FAIL: expected one well-formed line for $name, found $n"
		fail=1
	fi
done
other=$(printf '%s\n' "$out" | grep -vE "^#|^[a-z0-9_]+ lib=${num}us raw=${num}us ratio=${num}\$")
if [ -n "$other" ]; then
	echo "FAIL: unexpected output lines:"
	printf '%s\n' "$other"
	fail=1
fi
exit $fail
