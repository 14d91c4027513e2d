#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. gcc build with -Werror, every test (unit, header, install, KVM guests)
#   2. the same under ASan+UBSan (LeakSanitizer included)
#   3. clang build with -Werror, every test
#   4. valgrind --leak-check=full on the KVM lifecycle tests
#   5. each fuzz target for FUZZ_SECONDS (default 30) under libFuzzer + ASan/UBSan, and
#      the fuzz-in-a-VM demo (guided by the guest's coverage it finds a planted bug that
#      blind fuzzing misses with the same budget)
#   6. the Python and Rust bindings' test suites, against the gcc build
#   7. the Linux boot tests (scripts/test-linux.sh): builds the minimal guest kernel once
#      into GUEST_OUT (default ~/.cache/libvmm/guest, kept between runs) and boots it
# KVM tests must run: a missing /dev/kvm is a failure here, never a skip.
set -euo pipefail
cd "$(dirname "$0")/.."
export LIBVMM_REQUIRE_KVM=1
jobs=${JOBS:-2}
fuzz_seconds=${FUZZ_SECONDS:-30}
out=${BUILD_ROOT:-build/test}

build() {
	local dir=$1; shift
	echo "== configure and build $dir $*"
	cmake -S . -B "$dir" -DLIBVMM_WERROR=ON "$@" >"$dir.configure.log" 2>&1 || { cat "$dir.configure.log"; exit 1; }
	cmake --build "$dir" -j"$jobs"
}

run_ctest() {
	local dir=$1
	echo "== ctest $dir"
	ctest --test-dir "$dir" --output-on-failure --output-log "$dir/ctest-full.log" -j"$jobs"
	# A skipped test is a defect on machines with /dev/kvm: refuse it.
	if grep -E '\[  SKIPPED \]|\*\*\*Skipped|Not Run' "$dir/ctest-full.log"; then
		echo "FAIL: tests were skipped in $dir"; exit 1
	fi
}

mkdir -p "$out"
build "$out/gcc"
run_ctest "$out/gcc"

build "$out/asan" -DLIBVMM_SANITIZE=ON
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 run_ctest "$out/asan"

CC=clang CXX=clang++ build "$out/clang"
run_ctest "$out/clang"

echo "== valgrind on the KVM lifecycle tests"
for t in "$out"/gcc/tests/kvm_test_lifecycle "$out"/gcc/tests/kvm_test_vcpus; do
	[ -x "$t" ] || { echo "missing $t"; exit 1; }
	valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=1 "$t"
done

echo "== fuzzing, ${fuzz_seconds}s per target"
CC=clang CXX=clang++ build "$out/fuzz" -DLIBVMM_SANITIZE=ON -DLIBVMM_BUILD_TESTS=OFF -DLIBVMM_BUILD_EXAMPLES=OFF -DLIBVMM_BUILD_BENCH=OFF
scripts/run-fuzz.sh "$out/fuzz" "$fuzz_seconds"
scripts/fuzz-in-vm-demo.sh "$out/fuzz"

echo "== Python bindings"
bindings/python/test.sh "$out/gcc"
echo "== Rust bindings"
bindings/rust/test.sh "$out/gcc"

echo "== Linux boot tests"
BUILD_ROOT=$out JOBS=$jobs bash scripts/test-linux.sh

echo "== all checks passed"
