#!/bin/sh
# Packaging test: installs a libvmm build tree into a scratch prefix and checks it the way
# a downstream user meets it.
#   1. `cmake --install <build> --prefix <tmp>` puts headers, libvmm.so(.0), libvmm.a,
#      the CMake package and libvmm.pc in place;
#   2. tests/install/consumer builds with find_package(libvmm) against that prefix only,
#      linked to libvmm::vmm (shared) and libvmm::vmm_static, and both programs run;
#   3. the same consumer.c builds with the C compiler and `pkg-config --cflags --libs
#      libvmm` (nothing else on the include or library path) and runs;
#   4. libvmm.so exports only vmm_* symbols (nm -D --defined-only) and its SONAME is
#      libvmm.so.0 (readelf -d).
# The consumer calls vmm_version() and vmm_strerror(-ENODEV); no /dev/kvm is needed.
#
# usage: check-install.sh BUILD_DIR CONSUMER_SRC_DIR CMAKE CC [EXTRA_CFLAGS]
# EXTRA_CFLAGS go to compile and link of the consumer (sanitizer flags when libvmm was
# built with them: an instrumented libvmm.so needs the runtime in the program).
set -eu

if [ $# -lt 4 ]; then
	echo "usage: $0 BUILD_DIR CONSUMER_SRC_DIR CMAKE CC [EXTRA_CFLAGS]" >&2
	exit 2
fi
build=$1
src=$2
cmake=$3
cc=$4
extra=${5:-}

fail() {
	echo "install.consumer: FAIL: $*" >&2
	exit 1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/libvmm-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
prefix=$tmp/prefix

# Keep the host's environment out: only our prefix may satisfy find_package and
# pkg-config, so a stray system-wide libvmm cannot make the test pass.
unset CMAKE_PREFIX_PATH PKG_CONFIG_PATH LD_LIBRARY_PATH CPATH C_INCLUDE_PATH LIBRARY_PATH || true

# ---- 1. install ---------------------------------------------------------------------
"$cmake" --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
	{ cat "$tmp/install.log" >&2; fail "cmake --install $build failed"; }

pc=$(find "$prefix" -name libvmm.pc -path '*/pkgconfig/*' | head -n 1)
[ -n "$pc" ] || fail "libvmm.pc was not installed"
libdir=$(dirname "$(dirname "$pc")")
[ -f "$prefix/include/libvmm/libvmm.h" ] || fail "include/libvmm/libvmm.h was not installed"
[ -f "$libdir/libvmm.a" ] || fail "libvmm.a was not installed in $libdir"
[ -L "$libdir/libvmm.so" ] || fail "libvmm.so (development symlink) was not installed in $libdir"
[ -e "$libdir/libvmm.so.0" ] || fail "libvmm.so.0 (SONAME link) was not installed in $libdir"
[ -n "$(find "$prefix" -name libvmmConfig.cmake)" ] || fail "libvmmConfig.cmake was not installed"
so=$(readlink -f "$libdir/libvmm.so")

# ---- 4. exported symbols and SONAME (cheap; do them before the builds) ------------------
soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
[ "$soname" = "libvmm.so.0" ] || fail "SONAME of $so is '$soname', expected libvmm.so.0"

# Defined dynamic symbols, minus the version node (an absolute symbol named after the
# version script's LIBVMM_0 tag). Everything else must be vmm_*.
nm -D --defined-only "$so" >"$tmp/nm.txt" || fail "nm -D failed on $so"
awk '{ print $NF }' "$tmp/nm.txt" | sed 's/@.*//' | grep -v '^LIBVMM_' | sort -u >"$tmp/syms.txt"
[ -s "$tmp/syms.txt" ] || fail "libvmm.so exports no symbols"
bad=$(grep -v '^vmm_' "$tmp/syms.txt" || true)
if [ -n "$bad" ]; then
	echo "$bad" | sed 's/^/  /' >&2
	fail "libvmm.so exports symbols outside vmm_* (above)"
fi
for s in vmm_version vmm_strerror vmm_last_error vmm_vm_create vmm_cpuid_create; do
	grep -qx "$s" "$tmp/syms.txt" || fail "libvmm.so does not export $s"
done
# Internal helpers are hidden (VMM_HIDDEN / the version script).
for s in vmm_err vmm_opts_copy vmm_cpuid_entries vmm_vm_kvm_fd; do
	if grep -qx "$s" "$tmp/syms.txt"; then
		fail "libvmm.so exports the internal symbol $s"
	fi
done

# ---- 2. CMake package --------------------------------------------------------------------
# CMAKE_FIND_USE_PACKAGE_REGISTRY=OFF: never fall back to a build tree a user registered.
"$cmake" -S "$src" -B "$tmp/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" \
	-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF \
	-DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="$extra" -DCMAKE_EXE_LINKER_FLAGS="$extra" \
	-DCMAKE_BUILD_TYPE=Release >"$tmp/cmake-config.log" 2>&1 ||
	{ cat "$tmp/cmake-config.log" >&2; fail "configuring the consumer with find_package(libvmm) failed"; }
found=$(sed -n 's/^libvmm_DIR:PATH=//p' "$tmp/cmake-build/CMakeCache.txt")
case $found in
"$prefix"/*) ;;
*) fail "find_package(libvmm) found '$found', not the scratch prefix $prefix" ;;
esac
"$cmake" --build "$tmp/cmake-build" >"$tmp/cmake-build.log" 2>&1 ||
	{ cat "$tmp/cmake-build.log" >&2; fail "building the consumer with CMake failed"; }

# The shared consumer must load the installed libvmm.so.0 (through the RPATH CMake set),
# the static one must not need it at all.
readelf -d "$tmp/cmake-build/consumer" | grep -q 'NEEDED.*\[libvmm\.so\.0\]' ||
	fail "CMake consumer is not linked to libvmm.so.0"
if readelf -d "$tmp/cmake-build/consumer_static" | grep -q 'NEEDED.*libvmm'; then
	fail "consumer_static (libvmm::vmm_static) still needs libvmm.so"
fi
ldd "$tmp/cmake-build/consumer" | grep 'libvmm\.so\.0' | grep -q "$libdir" ||
	fail "CMake consumer does not resolve libvmm.so.0 to $libdir: $(ldd "$tmp/cmake-build/consumer" | grep libvmm)"
"$tmp/cmake-build/consumer" || fail "CMake consumer (libvmm::vmm) failed"
"$tmp/cmake-build/consumer_static" || fail "CMake consumer (libvmm::vmm_static) failed"

# ---- 3. pkg-config -----------------------------------------------------------------------
# PKG_CONFIG_LIBDIR replaces the default search path, so only our .pc is visible.
flags=$(PKG_CONFIG_LIBDIR="$libdir/pkgconfig" pkg-config --cflags --libs libvmm) ||
	fail "pkg-config --cflags --libs libvmm failed"
# Every -I and -L must resolve to the installed tree (a .pc file that kept the configure-
# time prefix would point to /usr/local instead).
want_inc=$(readlink -f "$prefix/include")
want_lib=$(readlink -f "$libdir")
seen_inc='' seen_lib=''
for f in $flags; do
	case $f in
	-I*) d=$(readlink -f "${f#-I}" || true)
		[ "$d" = "$want_inc" ] || fail "pkg-config --cflags has $f, not $want_inc: libvmm.pc does not follow --prefix"
		seen_inc=1 ;;
	-L*) d=$(readlink -f "${f#-L}" || true)
		[ "$d" = "$want_lib" ] || fail "pkg-config --libs has $f, not $want_lib: libvmm.pc does not follow --prefix"
		seen_lib=1 ;;
	esac
done
[ -n "$seen_inc" ] && [ -n "$seen_lib" ] || fail "pkg-config gave no -I or no -L for the install prefix ($flags)"
# shellcheck disable=SC2086 # flags and extra are word lists on purpose
"$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror $extra "$src/consumer.c" -o "$tmp/consumer-pc" $flags \
	2>"$tmp/cc.log" || { cat "$tmp/cc.log" >&2; fail "$cc consumer.c \$(pkg-config --cflags --libs libvmm) failed"; }
LD_LIBRARY_PATH=$libdir "$tmp/consumer-pc" || fail "pkg-config consumer failed"

echo "install.consumer: OK ($prefix: SONAME $soname, $(wc -l <"$tmp/syms.txt") exported vmm_* symbols)"
