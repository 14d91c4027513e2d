#!/usr/bin/env bash
# Builds the test initramfs images: uncompressed newc cpio archives, made without root.
#
#   scripts/build-initramfs.sh [OUTDIR]           (default: build/guest in the repo)
#
# OUTDIR/initramfs-microvm.cpio   for the minimal kernel (everything built in)
# OUTDIR/initramfs-cloud.cpio     the same plus the stock kernel's virtio modules, if
#                                 scripts/fetch-cloud-kernel.sh has put them into
#                                 OUTDIR/cloud/modules
# Contents: /init (guest/initramfs/init), a static busybox (Debian's busybox-static)
# with a symlink per applet, /bin/libvmm-guest (guest/initramfs/libvmm-guest.c, built
# static), /dev/console and /dev/null.
#
# Uncompressed on purpose: the kernel unpacks the initramfs at ring 0, which our
# development machines interpret (gzip unpacking alone took 48 s there).
# The archive is written by the kernel's own usr/gen_init_cpio from a file list, so
# device nodes and root ownership need no privileges (directories, nodes and links get
# a fixed timestamp; files keep theirs). Idempotent: skipped when the inputs (file list
# and file contents) did not change.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$repo/build/guest}" && cd "${1:-$repo/build/guest}" && pwd)
tools=$out/tools
log() { printf '[build-initramfs] %s\n' "$*" >&2; }
mkdir -p "$tools"

if [ "${LIBVMM_NO_APT:-0}" != 1 ]; then
	missing=()
	for p in busybox-static build-essential; do
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
busybox=/bin/busybox
file -L "$busybox" 2>/dev/null | grep -q "statically linked" ||
	{ log "$busybox is not the static busybox (apt-get install busybox-static)"; exit 1; }

# ---- tools: gen_init_cpio (from the kernel source) and libvmm-guest ----------------------
gen_src=$out/kernel/src/usr/gen_init_cpio.c
if [ ! -f "$gen_src" ]; then
	# No unpacked kernel tree: take the one file out of Debian's source tarball.
	tarball=/usr/src/linux-source-6.1.tar.xz
	[ -f "$tarball" ] || { log "need $tarball (apt-get install linux-source-6.1) or scripts/build-guest-kernel.sh first"; exit 1; }
	gen_src=$tools/gen_init_cpio.c
	if [ ! -f "$gen_src" ]; then
		log "extracting usr/gen_init_cpio.c from $tarball"
		tar -xJOf "$tarball" linux-source-6.1/usr/gen_init_cpio.c > "$gen_src.tmp"
		mv "$gen_src.tmp" "$gen_src"
	fi
fi
if [ ! -x "$tools/gen_init_cpio" ] || [ "$gen_src" -nt "$tools/gen_init_cpio" ]; then
	cc -O2 -o "$tools/gen_init_cpio" "$gen_src"
fi
helper_src=$repo/guest/initramfs/libvmm-guest.c
if [ ! -x "$tools/libvmm-guest" ] || [ "$helper_src" -nt "$tools/libvmm-guest" ]; then
	log "building libvmm-guest (static)"
	cc -static -Os -s -Wall -Wextra -Werror -o "$tools/libvmm-guest" "$helper_src"
fi

# ---- file lists -----------------------------------------------------------------------------
# gen_init_cpio syntax: dir NAME MODE UID GID / file NAME SOURCE MODE UID GID /
# slink NAME TARGET MODE UID GID / nod NAME MODE UID GID c|b MAJOR MINOR
base_list() {
	local d
	for d in /bin /sbin /usr /usr/bin /usr/sbin /dev /proc /sys /mnt /tmp /root /lib; do
		echo "dir $d 0755 0 0"
	done
	echo "nod /dev/console 0600 0 0 c 5 1"
	echo "nod /dev/null 0666 0 0 c 1 3"
	echo "file /init $repo/guest/initramfs/init 0755 0 0"
	echo "file /bin/busybox $busybox 0755 0 0"
	echo "file /bin/libvmm-guest $tools/libvmm-guest 0755 0 0"
	"$busybox" --list-full | LC_ALL=C sort | while read -r applet; do
		[ "/$applet" != /bin/busybox ] && [ "$applet" != linuxrc ] &&
			echo "slink /$applet /bin/busybox 0777 0 0"
	done
}
cloud_list() {
	local m
	echo "dir /lib/modules 0755 0 0"
	echo "file /lib/modules/load-order $out/cloud/modules/load-order 0644 0 0"
	while read -r m; do
		echo "file /lib/modules/$m.ko $out/cloud/modules/$m.ko 0644 0 0"
	done < "$out/cloud/modules/load-order"
}

# Writes $1 from the file list on stdin unless an archive from identical inputs exists.
make_cpio() {
	local dst=$1 list key
	list=$(cat)
	# The key covers the list and the content of every file it names, not where those
	# files are (the clone's path): the source column is left out of the list's part.
	key=$( {
		echo "$list" | awk '$1 == "file" { $3 = "" } { print }'
		echo "$list" | awk '$1 == "file" { print $3 }' | xargs sha256sum | cut -d' ' -f1
	} | sha256sum | cut -d' ' -f1)
	if [ -f "$dst" ] && [ "$(cat "$dst.stamp" 2>/dev/null)" = "$key" ]; then
		log "up to date: $dst"
		return
	fi
	echo "$list" > "$dst.list"
	# -t: a fixed mtime (2024-01-01) for everything that is not a regular file.
	"$tools/gen_init_cpio" -t 1704067200 "$dst.list" > "$dst.tmp"
	mv "$dst.tmp" "$dst"
	echo "$key" > "$dst.stamp"
	log "$dst: $(stat -c %s "$dst") bytes"
}

base_list | make_cpio "$out/initramfs-microvm.cpio"
if [ -f "$out/cloud/modules/load-order" ]; then
	{ base_list; cloud_list; } | make_cpio "$out/initramfs-cloud.cpio"
else
	log "no $out/cloud/modules (run scripts/fetch-cloud-kernel.sh): initramfs-cloud.cpio not built"
fi
