#!/usr/bin/env bash
# Shows that guest coverage guides libFuzzer: runs examples/fuzz-in-vm (built under
# libFuzzer in <build-dir>/fuzz/) on its sample guest target twice with the same seed and
# the same budget of inputs (not time, so the outcome is deterministic): once guided by
# the guest's coverage counters, once blind (FUZZ_IN_VM_BLIND=1). Passes if
#   - guided finds the planted bug: libFuzzer exits with the crash code and writes one
#     crash file, which starts with the target's magic and crashes the guest again when
#     replayed;
#   - blind finishes the whole budget without a crash.
# Prints runs, time and execs/s of both, and the magic depth each reached.
#
#   scripts/fuzz-in-vm-demo.sh <build-dir> [runs] [seed]
#
# Defaults: FUZZ_IN_VM_DEMO_RUNS (60000 inputs), FUZZ_IN_VM_DEMO_SEED (3). Needs a
# clang build with LIBVMM_BUILD_FUZZ=ON (the binary <build-dir>/fuzz/fuzz-in-vm) and a
# usable /dev/kvm; exits 77 (skip) without either (no /dev/kvm with
# LIBVMM_REQUIRE_KVM=1: exits 1). Nothing is written outside a temporary directory,
# which is kept (and named) on failure.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 3 ]; then
	echo "usage: $0 <build-dir> [runs] [seed]" >&2
	exit 2
fi
build=$(cd "$1" && pwd)
runs=${2:-${FUZZ_IN_VM_DEMO_RUNS:-60000}}
seed=${3:-${FUZZ_IN_VM_DEMO_SEED:-3}}
if ! [[ $runs =~ ^[0-9]+$ && $seed =~ ^[0-9]+$ ]] || [ "$runs" -eq 0 ]; then
	echo "fuzz-in-vm-demo: runs and seed must be numbers, runs > 0" >&2
	exit 2
fi
bin=$build/fuzz/fuzz-in-vm
if [ ! -x "$bin" ]; then
	echo "fuzz-in-vm-demo: no $bin (needs a clang build with -DLIBVMM_BUILD_FUZZ=ON): skipped" >&2
	exit 77
fi
if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	if [ "${LIBVMM_REQUIRE_KVM:-0}" = 1 ]; then
		echo "FAIL: no usable /dev/kvm, and LIBVMM_REQUIRE_KVM=1" >&2
		exit 1
	fi
	echo "fuzz-in-vm-demo: no usable /dev/kvm: skipped (LIBVMM_REQUIRE_KVM=1 fails instead)" >&2
	exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-in-vm-demo.XXXXXX")
ok=0
cleanup() {
	if [ $ok -eq 1 ]; then
		rm -rf "$tmp"
	else
		echo "fuzz-in-vm-demo: logs kept in $tmp" >&2
	fi
}
trap cleanup EXIT

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
crash_rc=66 # libFuzzer's code for a crash (-error_exitcode); 77 is kept for "skipped"
# The same flags for both modes. -max_len=16 -mutate_depth=1: the target parses a short
# header, so short inputs mutated one step at a time are the useful ones. No corpus
# directory: both start from the empty input, and only crash files are written (into
# the artifact directory).
flags=(-seed="$seed" -runs="$runs" -max_len=16 -mutate_depth=1 -error_exitcode="$crash_rc"
	-timeout=25 -print_final_stats=1)

# run <mode> <blind 0|1>: fuzzes; leaves $tmp/<mode>/{log,rc}.
run() {
	local dir=$tmp/$1 rc=0
	mkdir -p "$dir/artifacts"
	echo "== $1: seed $seed, $runs runs"
	FUZZ_IN_VM_BLIND=$2 "$bin" "${flags[@]}" -artifact_prefix="$dir/artifacts/" \
		>"$dir/log" 2>&1 || rc=$?
	echo "$rc" >"$dir/rc"
	if [ "$rc" -eq 77 ]; then
		tail -n 5 "$dir/log" >&2
		if [ "${LIBVMM_REQUIRE_KVM:-0}" = 1 ]; then
			echo "FAIL: the sandbox cannot use /dev/kvm, and LIBVMM_REQUIRE_KVM=1" >&2
			exit 1
		fi
		echo "fuzz-in-vm-demo: the sandbox cannot use /dev/kvm: skipped" >&2
		ok=1
		exit 77
	fi
	grep -E '^fuzz-in-vm: (done|crash|guest crash|host error)' "$dir/log" || true
}

fail() {
	echo "FAIL: $*"
	for m in guided blind; do
		[ -f "$tmp/$m/log" ] && { echo "--- $m log (tail)"; tail -n 30 "$tmp/$m/log"; }
	done
	exit 1
}

run guided 0
run blind 1

# Guided: a crash, one crash file, and the file is the bug.
rc=$(cat "$tmp/guided/rc")
[ "$rc" -eq $crash_rc ] || fail "guided: exit code $rc, expected $crash_rc (a crash)"
mapfile -t crashes < <(find "$tmp/guided/artifacts" -type f -name 'crash-*')
[ ${#crashes[@]} -eq 1 ] || fail "guided: ${#crashes[@]} crash files, expected 1"
crash=${crashes[0]}
grep -q 'fuzz-in-vm: guest crash' "$tmp/guided/log" || fail "guided: no guest crash reported"
magic=$(head -c 4 "$crash" | od -An -tx1 | tr -d ' \n')
[ "$magic" = 4c564d4d ] || fail "guided: crash file starts with $magic, not the magic LVMM"
replay_rc=0
"$bin" -error_exitcode=$crash_rc "$crash" >"$tmp/replay.log" 2>&1 || replay_rc=$?
if [ "$replay_rc" -ne $crash_rc ] || ! grep -q 'fuzz-in-vm: guest crash on run 1 ' "$tmp/replay.log"; then
	fail "replaying $(basename "$crash") did not crash the guest (exit $replay_rc)"
fi
echo "replay of $(basename "$crash") ($(stat -c %s "$crash") bytes): $(grep -m1 'guest crash' "$tmp/replay.log")"
# A guest that aborts (vmm_guest_abort, -ECANCELED) is a crash too: parse_strict aborts
# on a message without the magic.
printf 'nope' >"$tmp/no-magic"
replay_rc=0
FUZZ_IN_VM_FUNC=parse_strict "$bin" -error_exitcode=$crash_rc "$tmp/no-magic" >"$tmp/abort.log" 2>&1 ||
	replay_rc=$?
if [ "$replay_rc" -ne $crash_rc ] ||
	! grep -q 'fuzz-in-vm: guest crash on run 1 .*parse_strict: no magic' "$tmp/abort.log"; then
	fail "a guest abort was not reported as a crash (exit $replay_rc): $(tail -n 20 "$tmp/abort.log")"
fi
echo "guest abort (parse_strict on a message without the magic): reported as a crash"

# Blind: the whole budget, no crash.
rc=$(cat "$tmp/blind/rc")
[ "$rc" -eq 0 ] || fail "blind: exit code $rc, expected 0 (no crash within $runs runs)"
n=$(find "$tmp/blind/artifacts" -type f | wc -l)
[ "$n" -eq 0 ] || fail "blind: $n artifact(s), expected none"
blind_runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$tmp/blind/log")
[ "${blind_runs:-0}" -ge "$runs" ] || fail "blind: ran ${blind_runs:-?} of $runs inputs"

guided_at=$(sed -n 's/^fuzz-in-vm: guest crash on run \([0-9]*\).*/\1/p' "$tmp/guided/log")
summary() { sed -n 's/^fuzz-in-vm: \(done\|crash\): //p' "$tmp/$1/log"; }
echo "== result (seed $seed, budget $runs inputs)"
echo "guided: found the bug at run $guided_at: $(summary guided)"
echo "blind:  no crash in $blind_runs runs:  $(summary blind)"
ok=1
