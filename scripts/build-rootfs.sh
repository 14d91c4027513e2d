#!/usr/bin/env bash
# Builds the test disk image: an ext4 file system made with `mke2fs -d` (no root
# privileges, no loop mounts).
#
#   scripts/build-rootfs.sh [OUTDIR]              (default: build/guest in the repo)
#
# OUTDIR/rootfs.ext4           32 MiB ext4, label libvmm-root, containing
#                              /testdata/known.bin (1 MiB of fixed bytes) and
#                              /testdata/known.sha256 (its checksum, sha256sum -c format)
# OUTDIR/rootfs.known.sha256   the same checksum, for the host side of a test
#
# The test init (guest/initramfs/init) mounts it from /dev/vda, checks known.bin and
# writes /guest-wrote.txt; the host reads that back with `debugfs -R "cat
# /guest-wrote.txt" rootfs.ext4` (also no root needed). Tests should boot a copy: a
# guest changes the image. UUID, hash seed and timestamps are fixed (only inode change
# times, which mke2fs copies from the staged files, differ from one build to the next).
# Idempotent: rebuilt only when missing or changed since it was built (its checksum is
# kept in rootfs.ext4.stamp), e.g. by a guest that wrote to it.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$repo/build/guest}" && cd "${1:-$repo/build/guest}" && pwd)
img=$out/rootfs.ext4
log() { printf '[build-rootfs] %s\n' "$*" >&2; }
# mke2fs is in /sbin, not on a normal user's PATH on Debian.
PATH=$PATH:/usr/sbin:/sbin
command -v mke2fs > /dev/null || { log "mke2fs missing (apt-get install e2fsprogs)"; exit 1; }

# The key covers this script (the recipe) and the mke2fs version. (sed reads to the end:
# with `head -n1` mke2fs could die of SIGPIPE, which pipefail turns into a failure.)
key=$( { sha256sum < "$0"; mke2fs -V 2>&1 | sed -n 1p; } | sha256sum | cut -d' ' -f1)
if [ -f "$img" ] && [ "$(cat "$img.stamp" 2>/dev/null)" = "$key $(sha256sum < "$img" | cut -d' ' -f1)" ]; then
	log "up to date: $img"
	exit 0
fi

stage=$out/rootfs-staging
rm -rf "$stage"
mkdir -p "$stage/testdata"
# 1 MiB of fixed bytes, 32768 lines of 32: the line numbers make every block differ.
seq -f "libvmm test data, line %08g" 1 32768 > "$stage/testdata/known.bin"
(cd "$stage/testdata" && sha256sum known.bin > known.sha256)
cp "$stage/testdata/known.sha256" "$out/rootfs.known.sha256"
printf 'libvmm test disk, made by scripts/build-rootfs.sh\n' > "$stage/README"
touch -d @1704067200 "$stage" "$stage/README" "$stage/testdata" "$stage"/testdata/*

rm -f "$img" "$img.stamp"
# lazy_itable_init=0: no ext4lazyinit thread zeroing inode tables inside the guest (at
# ring 0, which our development machines interpret).
E2FSPROGS_FAKE_TIME=1704067200 mke2fs -q -F -t ext4 -L libvmm-root \
	-U 6c69626d-766d-4000-8000-726f6f746673 \
	-E hash_seed=6c69626d-766d-4000-8000-686173680000,root_owner=0:0,lazy_itable_init=0,lazy_journal_init=0 \
	-d "$stage" "$img" 32M >&2
echo "$key $(sha256sum < "$img" | cut -d' ' -f1)" > "$img.stamp"
log "$img: $(stat -c %s "$img") bytes; known.bin $(cut -d' ' -f1 "$out/rootfs.known.sha256")"
