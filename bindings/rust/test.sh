#!/bin/bash
# Builds and tests the Rust bindings against a CMake build of libvmm, offline.
# Usage: bindings/rust/test.sh <build-dir>
#   <build-dir>: the CMake build directory (libvmm.so, tests/guests/*.elf,
#   tests/sandbox_guests/*.elf, examples/hello).
# Fails if cargo is missing, if anything fails, or if any test is ignored or skipped
# (the tests run real guests on /dev/kvm; on our machines nothing may be skipped).
set -euo pipefail

if [ $# -ne 1 ] || [ ! -d "$1" ]; then
	echo "usage: $0 <cmake-build-dir>" >&2
	exit 2
fi
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)

cargo=$(command -v cargo || true)
if [ -z "$cargo" ] && [ -x "${HOME:-/root}/.cargo/bin/cargo" ]; then
	cargo="${HOME:-/root}/.cargo/bin/cargo"
fi
if [ -z "$cargo" ]; then
	echo "rust bindings: cargo not found (PATH, \$HOME/.cargo/bin)." >&2
	echo "  Install Debian's toolchain (Rust 1.63 is enough): apt-get install cargo rustc" >&2
	exit 1
fi
if [ ! -e "$build/libvmm.so" ]; then
	echo "rust bindings: $build/libvmm.so not found: build libvmm first (cmake --build $build)" >&2
	exit 1
fi

export LIBVMM_LIB_DIR="$build" LIBVMM_BUILD_DIR="$build"
export LD_LIBRARY_PATH="$build${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
cd "$here"
echo "rust bindings: $("$cargo" --version), $(rustc --version 2>/dev/null || echo 'rustc ?')"
# The workspace has no dependencies; the lock file is generated, and one written by a
# newer cargo (format v4) cannot be read by Debian 12's.
rm -f Cargo.lock

"$cargo" build --offline --workspace --all-targets
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
"$cargo" test --offline --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
	echo "rust bindings: cargo test failed" >&2
	exit 1
fi
count() { # sums the "<n> <word>" counts of every "test result:" line
	awk -v w="$1" '/^test result:/ { for (i = 1; i < NF; i++) if ($(i + 1) ~ "^" w) n += $i } END { print n + 0 }' "$log"
}
passed=$(count passed)
skipped=$(count ignored)
if [ "$skipped" -ne 0 ] || grep -qE '\.\.\. ignored' "$log"; then
	echo "rust bindings: $skipped test(s) ignored or skipped" >&2
	exit 1
fi
if [ "$passed" -lt 25 ]; then
	echo "rust bindings: only $passed tests ran" >&2
	exit 1
fi

# The Rust hello example prints exactly what the C one prints.
"$cargo" build --offline --example hello
rust_out=$("$here/target/debug/examples/hello" "$build/tests/guests/hello.elf")
if [ -x "$build/examples/hello" ]; then
	c_out=$("$build/examples/hello" "$build/tests/guests/hello.elf")
	if [ "$rust_out" != "$c_out" ]; then
		printf 'rust bindings: examples/hello.rs output differs from examples/hello.c:\n%s\n---\n%s\n' \
			"$rust_out" "$c_out" >&2
		exit 1
	fi
fi
case "$rust_out" in
*"guest exited with code 0x68629fc5"*) ;;
*) echo "rust bindings: unexpected hello output: $rust_out" >&2; exit 1 ;;
esac
echo "rust bindings: $passed tests passed, 0 skipped; hello example matches"
