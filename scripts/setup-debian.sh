#!/usr/bin/env bash
# Installs everything scripts/test.sh needs on Debian 12, the Linux boot tests included
# (run as root or with sudo). The guest-image scripts (scripts/build-*.sh) also install
# what they miss, but the test scripts run them with LIBVMM_NO_APT=1: a package missing
# from this list is then a loud failure, never a silent install in the middle of CI.
set -euo pipefail
packages=(
	# the library, its tests, fuzzing and ACPI/DT checks
	build-essential cmake pkg-config libcmocka-dev libfdt-dev clang libclang-rt-dev valgrind
	acpica-tools device-tree-compiler
	# the minimal guest kernel (scripts/build-guest-kernel.sh): the source tarball, what
	# Kbuild and objtool need, LZ4 for the compressed bzImage, xz for the tarball
	linux-source-6.1 bc bison flex libelf-dev lz4 xz-utils patch
	# the test initramfs (busybox-static, `file` to check it is static) and the disk image
	# (mke2fs -d; debugfs reads the guest's file back)
	busybox-static file e2fsprogs
	# the Python bindings' tests (a venv with pip, offline)
	python3 python3-venv python3-pip
	# the fuzz-in-a-VM demo's guest is built with clang's coverage (above)
)
# The Rust bindings: any cargo/rustc from 1.63 on. Keep one that is already there (e.g.
# rustup's in ~/.cargo/bin); otherwise Debian's.
if ! command -v cargo >/dev/null 2>&1 && [ ! -x "${HOME:-/root}/.cargo/bin/cargo" ]; then
	packages+=(cargo rustc)
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "== installing ${missing[*]}"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
