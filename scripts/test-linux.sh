#!/usr/bin/env bash
# The Linux boot tests, as CI runs them (after scripts/test.sh):
#   1. builds the guest kernel, the test initramfs and the disk image (first time: minutes;
#      afterwards the scripts find them up to date), with -DLIBVMM_LINUX_TESTS=ON
#   2. runs the tests labelled `linux` (each boots Linux: minutes on hosts whose KVM
#      interprets ring-0 guest code, well under a second on bare-metal KVM)
# A missing /dev/kvm is a failure here, never a skip.
#
#   BUILD_ROOT   build trees (default build/test; this script uses $BUILD_ROOT/linux)
#   GUEST_OUT    guest kernel and images (default build/guest; keep it between CI runs
#                to skip the kernel build)
set -euo pipefail
cd "$(dirname "$0")/.."
export LIBVMM_REQUIRE_KVM=1
jobs=${JOBS:-2}
out=${BUILD_ROOT:-build/test}
guest_out=$(mkdir -p "${GUEST_OUT:-build/guest}" && cd "${GUEST_OUT:-build/guest}" && pwd)
dir=$out/linux

mkdir -p "$out"
echo "== configure and build $dir (guest files in $guest_out)"
cmake -S . -B "$dir" -DLIBVMM_WERROR=ON -DLIBVMM_LINUX_TESTS=ON -DLIBVMM_GUEST_OUT="$guest_out" \
	-DLIBVMM_BUILD_FUZZ=OFF -DLIBVMM_BUILD_BENCH=OFF >"$dir.configure.log" 2>&1 ||
	{ cat "$dir.configure.log"; exit 1; }
start=$(date +%s)
cmake --build "$dir" -j"$jobs" --target linux_guest
echo "== guest files ready after $(( $(date +%s) - start )) s"
cmake --build "$dir" -j"$jobs"

echo "== ctest -L linux"
start=$(date +%s)
ctest --test-dir "$dir" -L linux --output-on-failure --output-log "$dir/ctest-linux.log"
if grep -E '\[  SKIPPED \]|\*\*\*Skipped|Not Run' "$dir/ctest-linux.log"; then
	echo "FAIL: Linux boot tests were skipped"; exit 1
fi
if ! grep -q "linux\.test_linux_boot" "$dir/ctest-linux.log"; then
	echo "FAIL: no Linux boot test ran"; exit 1
fi
echo "== Linux boot tests passed in $(( $(date +%s) - start )) s"
