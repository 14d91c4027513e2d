#!/usr/bin/env bash
# Installs what libvmm needs to build and test on Debian 12 (run as root or with sudo).
set -euo pipefail
packages=(build-essential cmake pkg-config libcmocka-dev libfdt-dev clang libclang-rt-dev valgrind acpica-tools device-tree-compiler)
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
