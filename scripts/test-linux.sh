#!/usr/bin/env bash
# The Linux boot tests, as CI runs them (scripts/test.sh calls this last):
#   1. builds the guest kernel, the test initramfs and the disk image into GUEST_OUT (the
#      first time: 5-20 minutes for the kernel; afterwards the scripts' stamps find them
#      up to date in a second, and rebuild whatever input changed), with
#      -DLIBVMM_LINUX_TESTS=ON
#   2. runs the tests labelled `linux` one after the other (each boots Linux: 1-7 minutes
#      on hosts whose KVM interprets ring-0 guest code, well under a second on bare-metal
#      KVM) and requires every one of them to pass: a skip, a missing test or a missing
#      /dev/kvm is a failure here.
#
#   BUILD_ROOT   build trees (default build/test; this script uses $BUILD_ROOT/linux)
#   GUEST_OUT    guest kernel and images, kept between runs so that the kernel is built
#                once per machine (default ${XDG_CACHE_HOME:-$HOME/.cache}/libvmm/guest,
#                outside the clone). Runs sharing it take turns (flock).
#   LIBVMM_NO_APT  default 1: the guest scripts do not apt-get; scripts/setup-debian.sh
#                installs what they need, and anything missing fails loudly below
set -euo pipefail
cd "$(dirname "$0")/.."
export LIBVMM_REQUIRE_KVM=1
export LIBVMM_NO_APT=${LIBVMM_NO_APT:-1}
# mke2fs and debugfs live in /sbin, which is not on a normal user's PATH on Debian.
export PATH=$PATH:/usr/sbin:/sbin
jobs=${JOBS:-2}
out=${BUILD_ROOT:-build/test}
cache_home=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}
guest_out=${GUEST_OUT:-$cache_home/libvmm/guest}
guest_out=$(mkdir -p "$guest_out" && cd "$guest_out" && pwd)
dir=$out/linux
# The tests every CI run must see pass (tests/kvm/test_linux_*.c, added by
# tests/kvm/linux.cmake). Debian's stock cloud kernel (scripts/fetch-cloud-kernel.sh) has
# no test: it does not reach user space on hosts that interpret ring-0 code.
expected=(linux.test_linux_boot linux.test_linux_microvm)

[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "FAIL: no usable /dev/kvm"; exit 1; }

# Everything the guest scripts need, checked up front so that a machine set up without
# scripts/setup-debian.sh fails here with the package to install, not 10 minutes into a
# kernel build.
need_missing=()
need() { command -v "$1" > /dev/null || need_missing+=("$2 (for $1)"); }
need cc build-essential
need make build-essential
need patch patch
need xz xz-utils
need bc bc
need bison bison
need flex flex
need lz4 lz4
need file file
need mke2fs e2fsprogs
need debugfs e2fsprogs
[ -f /usr/src/linux-source-6.1.tar.xz ] || need_missing+=("linux-source-6.1 (for /usr/src/linux-source-6.1.tar.xz)")
[ -f /usr/include/gelf.h ] || need_missing+=("libelf-dev (for gelf.h)")
file -L /bin/busybox 2> /dev/null | grep -q "statically linked" || need_missing+=("busybox-static (for /bin/busybox)")
if [ ${#need_missing[@]} -gt 0 ]; then
	printf 'FAIL: missing: %s\n' "${need_missing[@]}"
	echo "run scripts/setup-debian.sh"
	exit 1
fi

mkdir -p "$out"
echo "== configure and build $dir (guest files in $guest_out)"
cmake -S . -B "$dir" -DLIBVMM_WERROR=ON -DLIBVMM_LINUX_TESTS=ON -DLIBVMM_GUEST_OUT="$guest_out" \
	-DLIBVMM_BUILD_EXAMPLES=ON -DLIBVMM_BUILD_FUZZ=OFF -DLIBVMM_BUILD_BENCH=OFF >"$dir.configure.log" 2>&1 ||
	{ cat "$dir.configure.log"; exit 1; }
start=$(date +%s)
(
	# One build of the guest files at a time per cache directory.
	flock 9
	JOBS=$jobs cmake --build "$dir" -j"$jobs" --target linux_guest
) 9> "$guest_out/.lock"
echo "== guest files ready after $(( $(date +%s) - start )) s"
cmake --build "$dir" -j"$jobs"

echo "== ctest -L linux (one at a time; stops at the first failure)"
start=$(date +%s)
# --stop-on-failure: a kernel that cannot boot fails every test only after its timeout;
# one is enough to know, and it keeps CI within its time limit.
ctest --test-dir "$dir" -L '^linux$' --stop-on-failure --output-on-failure --output-log "$dir/ctest-linux.log"
if grep -E '\[  SKIPPED \]|\*\*\*Skipped|Not Run' "$dir/ctest-linux.log"; then
	echo "FAIL: Linux boot tests were skipped"; exit 1
fi
for t in "${expected[@]}"; do
	grep -Eq "Test +#[0-9]+: $t \.+ +Passed" "$dir/ctest-linux.log" ||
		{ echo "FAIL: $t did not run and pass"; exit 1; }
done
echo "== Linux boot tests passed in $(( $(date +%s) - start )) s"
