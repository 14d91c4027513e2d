#!/bin/sh
# Runs bench_snapshot ("$@") and checks the format of its output: the expected figures,
# each once, as "<name> lib=<v><unit> base=<v><unit> ratio=<r>" or "<name> value=<v><unit>",
# and every other line a '#' comment. Timings are never asserted (the machines are shared
# and noisy). Exit 77 (skip) passes through.
out=$("$@")
rc=$?
printf '%s\n' "$out"
[ "$rc" -eq 77 ] && exit 77
if [ "$rc" -ne 0 ]; then
	echo "FAIL: bench_snapshot exited with $rc"
	exit 1
fi
num='[0-9]+(\.[0-9]+)?'
pair="lib=${num}[a-zA-Z]+ base=${num}[a-zA-Z]+ ratio=${num}"
value="value=-?${num}[a-zA-Z]+"
fail=0
# expect <count> <name regex> <rest regex>
expect() {
	n=$(printf '%s\n' "$out" | grep -cE "^$2 $3\$")
	if [ "$n" != "$1" ]; then
		echo "FAIL: expected $1 well-formed line(s) matching '$2', found $n"
		fail=1
	fi
}
size='[0-9]+[mg]'
expect 8 "reset_${size}_(1|16|256|4096)p" "$pair"
expect 8 "reset_${size}_(1|16|256|4096)p_pages" "$value"
expect 1 reset_64m_16p "$pair"
for name in call_reset call_noreset clone_64m restore_64m save_64m; do
	expect 1 $name "$pair"
done
for name in clone_64m_rss clone_64m_rss_max clone_64m_rss_net; do
	expect 1 $name "$value"
done
expect 2 "restore_${size}" "$pair"
expect 1 "restore_lazy_${size}_vs_64m" "$pair"
expect 2 "save_${size}" "$pair"
for f in state_file mem_file mem_file_alloc; do
	expect 2 "save_${size}_$f" "$value"
done
other=$(printf '%s\n' "$out" | grep -vE "^#|^[a-z0-9_]+ ($pair|$value)\$")
if [ -n "$other" ]; then
	echo "FAIL: unexpected output lines:"
	printf '%s\n' "$other"
	fail=1
fi
exit $fail
