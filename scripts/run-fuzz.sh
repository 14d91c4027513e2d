#!/usr/bin/env bash
# Runs every fuzz target of a build for a time budget, starting from its seed corpus.
#
#   scripts/run-fuzz.sh <build-dir> <seconds-per-target>
#
# Target <build-dir>/fuzz/fuzz_<name> gets a temporary copy of fuzz/corpus/<name>/ (the
# repository is never written; inputs the fuzzer finds die with the temp dir). With 0
# seconds each target only replays its seeds. Fails if any target crashes, hangs, leaks
# or reports a sanitizer error; the offending inputs are kept under
# <build-dir>/fuzz-artifacts/<name>/ (reproduce: <build-dir>/fuzz/fuzz_<name> <file>).
set -euo pipefail

if [ $# -ne 2 ] || ! [[ $2 =~ ^[0-9]+$ ]]; then
	echo "usage: $0 <build-dir> <seconds-per-target>" >&2
	exit 2
fi
build=$(cd "$1" && pwd)
seconds=$2
repo=$(cd "$(dirname "$0")/.." && pwd)

targets=()
for t in "$build"/fuzz/fuzz_*; do
	[ -f "$t" ] && [ -x "$t" ] && targets+=("$t")
done
if [ ${#targets[@]} -eq 0 ]; then
	echo "run-fuzz: no fuzz targets in $build/fuzz (configure with -DLIBVMM_BUILD_FUZZ=ON and build)" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/libvmm-fuzz.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Sanitizer settings for both libFuzzer and the standalone driver builds.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=()
for t in "${targets[@]}"; do
	target=$(basename "$t")
	name=${target#fuzz_}
	work=$tmp/$name
	mkdir -p "$work/corpus" "$work/artifacts"
	if [ -d "$repo/fuzz/corpus/$name" ]; then
		cp -R "$repo/fuzz/corpus/$name/." "$work/corpus/"
	else
		echo "run-fuzz: warning: no seed corpus fuzz/corpus/$name/" >&2
	fi
	seeds=$(find "$work/corpus" -type f | wc -l)
	if [ "$seconds" -eq 0 ]; then
		budget=(-runs=0)
	else
		budget=(-max_total_time="$seconds")
	fi
	echo "== $target: ${seconds}s from $seeds seed(s)"
	rc=0
	"$t" "${budget[@]}" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/log" 2>&1 || rc=$?
	found=$(find "$work/artifacts" -type f | wc -l)
	if [ "$rc" -ne 0 ] || [ "$found" -ne 0 ]; then
		echo "FAIL: $target exited with $rc, $found artifact(s):"
		tail -n 60 "$work/log"
		keep=$build/fuzz-artifacts/$name
		mkdir -p "$keep"
		cp -R "$work/artifacts/." "$keep/"
		cp "$work/log" "$keep/log"
		echo "artifacts and log kept in $keep"
		failed+=("$target")
	else
		after=$(find "$work/corpus" -type f | wc -l)
		stats=$(grep -E '^(stat::number_of_executed_units|standalone driver: done)' "$work/log" | tail -n 1 || true)
		echo "ok: $target (corpus $seeds -> $after) ${stats}"
	fi
done

if [ ${#failed[@]} -ne 0 ]; then
	echo "run-fuzz: ${#failed[@]} target(s) failed: ${failed[*]}"
	exit 1
fi
echo "run-fuzz: all ${#targets[@]} target(s) passed"
