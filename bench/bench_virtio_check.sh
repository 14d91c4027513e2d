#!/bin/sh
# Runs bench_virtio ("$@") and checks the format of its output: one line per figure,
# "<name> lib=<v><unit> base=<v><unit> ratio=<r>" where the figure has a baseline,
# "<name> value=<v><unit>" where it has none, every other line a '#' comment. Timings
# are never asserted (the machines are shared and noisy). Exit 77 (skip) passes through.
out=$("$@")
rc=$?
printf '%s\n' "$out"
[ "$rc" -eq 77 ] && exit 77
if [ "$rc" -ne 0 ]; then
	echo "FAIL: bench_virtio exited with $rc"
	exit 1
fi
num='[0-9]+(\.[0-9]+)?'
fail=0
expect() { # name, regex of the rest of the line
	n=$(printf '%s\n' "$out" | grep -cE "^$1 $2\$")
	if [ "$n" != 1 ]; then
		echo "FAIL: expected one well-formed line for $1, found $n"
		fail=1
	fi
}
for name in blk_seq_read blk_seq_write; do
	expect $name "lib=${num}MB/s base=${num}MB/s ratio=${num}"
done
for name in blk_rand_read_4k blk_rand_write_4k; do
	expect $name "lib=${num}IOPS base=${num}IOPS ratio=${num}"
done
for what in kicks notifies interrupts; do
	for cfg in no_event_idx event_idx event_idx_delayed; do
		expect blk_${what}_per_req_$cfg "value=${num}/req"
	done
done
for dir in tx rx; do
	for len in 64b 1514b; do
		expect net_${dir}_frames_$len "value=${num}frames/s"
		expect net_${dir}_mbytes_$len "value=${num}MB/s"
	done
done
expect vsock_stream_g2h "value=${num}MB/s"
expect vsock_stream_h2g "value=${num}MB/s"
other=$(printf '%s\n' "$out" | grep -vE "^#|^[a-z0-9_]+ (lib=${num}[A-Za-z/]+ base=${num}[A-Za-z/]+ ratio=${num}|value=${num}[A-Za-z/]+)\$")
if [ -n "$other" ]; then
	echo "FAIL: unexpected output lines:"
	printf '%s\n' "$other"
	fail=1
fi
exit $fail
