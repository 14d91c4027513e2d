#!/usr/bin/env bash
# Fetches Debian's stock cloud kernel (linux-image-cloud-amd64) without installing it.
#
#   scripts/fetch-cloud-kernel.sh [OUTDIR]        (default: build/guest in the repo)
#
# Downloads the versioned package the linux-image-cloud-amd64 metapackage depends on
# (apt-get download, into a temporary directory), unpacks it with dpkg-deb -x and puts
# into OUTDIR/cloud/:
#   bzImage      the kernel as Debian ships it (/boot/vmlinuz-*)
#   vmlinux      the uncompressed ELF kernel taken out of the bzImage's payload (it has
#                the PVH entry note: Debian builds with CONFIG_PVH=y); trailing bytes
#                after the ELF are the kernel's relocation table, ignored by ELF loaders
#   config, version (Debian ships no real System.map; it is in the -dbg package)
#   modules/*.ko and modules/load-order: the virtio modules the initramfs loads (this
#                kernel builds virtio as modules) with their dependencies, in the order
#                insmod needs them
# Idempotent: skipped when OUTDIR/cloud/stamp names the candidate package version.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$repo/build/guest}" && cd "${1:-$repo/build/guest}" && pwd)
dst=$out/cloud
log() { printf '[fetch-cloud-kernel] %s\n' "$*" >&2; }
# What the test init needs; dependencies (virtio, virtio_ring, vsock, failover, ...)
# are added from the modules' own "depends" fields.
wanted=(virtio_mmio virtio_blk virtio_net virtio_console virtio-rng virtio_balloon
	vmw_vsock_virtio_transport)

if [ "${LIBVMM_NO_APT:-0}" != 1 ] && ! command -v modinfo > /dev/null; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq kmod >&2
fi
command -v modinfo > /dev/null || { log "modinfo missing (apt-get install kmod)"; exit 1; }

# awk reads all its input: exiting early could kill apt-cache with SIGPIPE (pipefail).
pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '!found && $1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; found = 1 }')
[ -n "$pkg" ] || { log "cannot resolve linux-image-cloud-amd64 (apt-get update?)"; exit 1; }
ver=$(apt-cache policy "$pkg" | awk '$1 == "Candidate:" { print $2 }')
key="$pkg $ver"
if [ "$(cat "$dst/stamp" 2>/dev/null)" = "$key" ] && [ -f "$dst/bzImage" ]; then
	log "up to date: $key in $dst"
	exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
log "downloading $pkg $ver"
# As root, apt would drop to its _apt user, who cannot write into our private temp dir.
sandbox=()
[ "$(id -u)" -ne 0 ] || sandbox=(-o APT::Sandbox::User=root)
(cd "$tmp" && apt-get download -qq "${sandbox[@]}" "$pkg=$ver" >&2)
dpkg-deb -x "$tmp"/*.deb "$tmp/root"
kdirs=("$tmp"/root/lib/modules/*)
[ -d "${kdirs[0]}" ] || { log "no lib/modules in $pkg"; exit 1; }
kver=$(basename "${kdirs[0]}")
rm -rf "$dst"
mkdir -p "$dst/modules"
cp "$tmp/root/boot/vmlinuz-$kver" "$dst/bzImage"
cp "$tmp/root/boot/config-$kver" "$dst/config"
echo "$kver" > "$dst/version"

# ---- modules, dependencies first --------------------------------------------------------
moddir=$tmp/root/lib/modules/$kver
declare -A done_mod=()
order=()
# modinfo and the depends field use '_' and '-' interchangeably in names.
find_ko() { find "$moddir" \( -name "$1.ko" -o -name "${1//-/_}.ko" -o -name "${1//_/-}.ko" \) -print -quit; }
add_module() {
	local name=$1 ko dep
	[ -z "${done_mod[$name]:-}" ] || return 0
	done_mod[$name]=1
	ko=$(find_ko "$name")
	if [ -z "$ko" ]; then
		# Built into this kernel: nothing to load.
		grep -q "/${name//-/[-_]}.ko\$" "$moddir/modules.builtin" && return 0
		log "module $name not found"
		exit 1
	fi
	for dep in $(modinfo -F depends "$ko" | tr ',' ' '); do
		add_module "$dep"
	done
	cp "$ko" "$dst/modules/"
	order+=("$(basename "$ko" .ko)")
}
for m in "${wanted[@]}"; do add_module "$m"; done
printf '%s\n' "${order[@]}" > "$dst/modules/load-order"

# ---- vmlinux: the bzImage's payload, decompressed ---------------------------------------
# Boot protocol >= 2.08: the protected-mode code starts at (setup_sects + 1) * 512 (a
# setup_sects of 0 means 4) and holds the compressed kernel at payload_offset (0x248),
# payload_length (0x24c) bytes long. No searching for magic numbers needed.
u8() { od -An -tu1 -j "$2" -N1 "$1" | tr -d ' '; }
u32() { od -An -tu4 -j "$2" -N4 "$1" | tr -d ' '; }
bz=$dst/bzImage
setup_sects=$(u8 "$bz" $((0x1f1)))
[ "$setup_sects" -ne 0 ] || setup_sects=4
payload_off=$(( (setup_sects + 1) * 512 + $(u32 "$bz" $((0x248))) ))
payload_len=$(u32 "$bz" $((0x24c)))
payload() { dd if="$bz" iflag=skip_bytes,count_bytes skip="$payload_off" count="$payload_len" status=none; }
magic=$(od -An -tx1 -j "$payload_off" -N4 "$bz" | tr -d ' ')
case $magic in
02214c18) unpack=(lz4 -dc) ;;
fd377a58) unpack=(xz -dc) ;;
1f8b*) unpack=(gzip -dc) ;;
28b52ffd) unpack=(zstd -dc) ;;
*) unpack=() ;;
esac
if [ ${#unpack[@]} -gt 0 ] && command -v "${unpack[0]}" > /dev/null; then
	# The build appends the uncompressed size after the stream, which some
	# decompressors report as trailing garbage: judge by the result instead.
	payload | "${unpack[@]}" > "$dst/vmlinux" 2> /dev/null || true
fi
if [ "$(od -An -tx1 -N4 "$dst/vmlinux" 2>/dev/null | tr -d ' ')" = 7f454c46 ]; then
	log "vmlinux extracted (${unpack[*]})"
else
	rm -f "$dst/vmlinux"
	log "no vmlinux: payload magic $magic not understood or its decompressor missing"
fi

echo "$key" > "$dst/stamp"
log "$key -> $dst (kernel $kver, modules: ${order[*]})"
ls -l "$dst" >&2
