#!/usr/bin/env bash
# Builds libvmm's minimal microVM guest kernel from Debian's linux-source package.
#
#   scripts/build-guest-kernel.sh [OUTDIR]        (default: build/guest in the repo)
#
# Steps: install linux-source-6.1 and the build dependencies with apt-get (set
# LIBVMM_NO_APT=1 to skip), unpack the source tarball into OUTDIR/kernel/src, apply
# guest/kernel/patches/*.patch, configure with allnoconfig + guest/kernel/microvm.config
# (merge_config.sh -n: everything not in the fragment is off), build bzImage and vmlinux.
# Results in OUTDIR/microvm/: bzImage, vmlinux (with the PVH entry note), System.map,
# config. Idempotent: each step is skipped when its inputs did not change (a stamp file
# holds the checksum of the inputs of that step: the source tarball's name, size and
# date and the patches for the unpacked tree; those plus the config fragment for the
# configuration and the results), so a cached OUTDIR from an older checkout is brought
# up to date, not trusted. Nothing is written into the repo.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$repo/build/guest}" && cd "${1:-$repo/build/guest}" && pwd)
fragment=$repo/guest/kernel/microvm.config
patchdir=$repo/guest/kernel/patches
jobs=${JOBS:-$(nproc)}
log() { printf '[build-guest-kernel] %s\n' "$*" >&2; }

# ---- packages -------------------------------------------------------------------------
need=(linux-source-6.1 build-essential bc bison flex libelf-dev)
if [ "${LIBVMM_NO_APT:-0}" != 1 ]; then
	missing=()
	for p in "${need[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		sudo=""
		[ "$(id -u)" -eq 0 ] || sudo="sudo"
		log "installing ${missing[*]}"
		$sudo apt-get update -qq
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
	fi
fi
tarball=$(ls /usr/src/linux-source-6.1.tar.xz 2>/dev/null || true)
[ -n "$tarball" ] || { log "no /usr/src/linux-source-6.1.tar.xz (apt-get install linux-source-6.1)"; exit 1; }

# ---- source tree: unpacked once per (tarball, patches) --------------------------------
kdir=$out/kernel
src=$kdir/src
mkdir -p "$kdir" "$out/microvm"
shopt -s nullglob
patches=("$patchdir"/*.patch)
shopt -u nullglob
# Keys hold contents and names, never the clone's path: a cache directory shared by
# clones in different places (CI) must stay valid for all of them.
src_key=$( {
	stat -c '%n %s %Y' "$tarball"
	for p in "${patches[@]}"; do echo "$(basename "$p") $(sha256sum < "$p")"; done
} | sha256sum | cut -d' ' -f1)
if [ "$(cat "$kdir/src.stamp" 2>/dev/null)" != "$src_key" ]; then
	log "unpacking $tarball"
	rm -rf "$src" "$kdir/src.stamp" "$kdir/config.stamp"
	mkdir -p "$src"
	tar -xJf "$tarball" -C "$src" --strip-components=1
	for p in "${patches[@]}"; do
		log "applying $(basename "$p")"
		patch -d "$src" -p1 --forward --quiet < "$p"
	done
	echo "$src_key" > "$kdir/src.stamp"
fi

# ---- configuration --------------------------------------------------------------------
make_k=(make -C "$src" ARCH=x86_64 KBUILD_BUILD_USER=libvmm KBUILD_BUILD_HOST=libvmm
	KBUILD_BUILD_TIMESTAMP="$(date -u -d "@$(stat -c %Y "$tarball")")")
cfg_key=$( { echo "$src_key"; sha256sum < "$fragment"; } | sha256sum | cut -d' ' -f1)
if [ "$(cat "$kdir/config.stamp" 2>/dev/null)" != "$cfg_key" ] || [ ! -f "$src/.config" ]; then
	log "configuring (allnoconfig + $(basename "$fragment"))"
	rm -f "$kdir/config.stamp"
	# merge_config.sh runs `make allnoconfig` with the fragment and then reports every
	# requested value that did not make it into .config: treat any such report as fatal.
	(cd "$src" && ARCH=x86_64 scripts/kconfig/merge_config.sh -n "$fragment") > "$kdir/merge.log" 2>&1 ||
		{ cat "$kdir/merge.log" >&2; exit 1; }
	if grep -q "^Value requested for" "$kdir/merge.log"; then
		grep -A3 "^Value requested for" "$kdir/merge.log" >&2
		log "the fragment asks for values Kconfig did not accept (above); fix guest/kernel/microvm.config"
		exit 1
	fi
	"${make_k[@]}" -s olddefconfig
	echo "$cfg_key" > "$kdir/config.stamp"
fi

# ---- build ----------------------------------------------------------------------------
# make is incremental on its own, but even a no-op run of Kbuild takes a while: skip it
# when OUTDIR/microvm/stamp says that the results there were copied from a build of this
# very configuration (the stamp is written last, after every copy, and removed before a
# build starts: an interrupted build or copy leaves no stamp and is redone).
results=(bzImage vmlinux System.map config)
have_all=1
for f in "${results[@]}"; do [ -s "$out/microvm/$f" ] || have_all=0; done
if [ "$have_all" = 1 ] && [ "$(cat "$out/microvm/stamp" 2>/dev/null)" = "$cfg_key" ]; then
	log "up to date: $out/microvm"
	exit 0
fi
rm -f "$out/microvm/stamp"
log "building bzImage and vmlinux with -j$jobs"
start=$(date +%s)
"${make_k[@]}" -s -j"$jobs" bzImage vmlinux
log "kernel built in $(( $(date +%s) - start )) s"
# Each result replaced atomically (copy, then rename): a test of another build tree that
# shares OUTDIR may be reading the previous one.
install_result() { cp "$1" "$out/microvm/$2.tmp" && mv -f "$out/microvm/$2.tmp" "$out/microvm/$2"; }
install_result "$src/arch/x86/boot/bzImage" bzImage
install_result "$src/vmlinux" vmlinux
install_result "$src/System.map" System.map
install_result "$src/.config" config
echo "$cfg_key" > "$out/microvm/stamp"
ls -l "$out/microvm" >&2
