#!/bin/sh
# Installs the Python bindings into a throw-away venv (offline: the in-tree build backend
# needs nothing from a package index) and runs their tests against a CMake build of
# libvmm: test.sh <build-dir>. Uses $PYTHON (default python3). Exits non-zero on any
# failure, and on any skipped test where /dev/kvm is usable; unittest's summary is the
# last line.
set -eu
if [ $# -ne 1 ]; then
	echo "usage: $0 <build-dir>" >&2
	exit 2
fi
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
python=${PYTHON:-python3}
lib="$build/libvmm.so.0"
if [ ! -e "$lib" ]; then
	echo "test.sh: $lib not found (build libvmm first)" >&2
	exit 1
fi
if [ ! -e "$build/tests/guests/hello.elf" ]; then
	echo "test.sh: $build/tests/guests/hello.elf not found (build the test guests)" >&2
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
pip_opts="--no-index --no-cache-dir --disable-pip-version-check --quiet"
export PIP_ROOT_USER_ACTION=ignore # CI runs as root; older pips ignore the variable
if "$python" -m venv "$tmp/venv" >"$tmp/venv.log" 2>&1; then
	py="$tmp/venv/bin/python"
	# shellcheck disable=SC2086
	"$py" -m pip install $pip_opts "$here"
	pythonpath=
else
	# No venv module (Debian without python3-venv): install into a target directory.
	echo "test.sh: no venv ($(tail -n 1 "$tmp/venv.log")); installing with --target" >&2
	py="$python"
	# shellcheck disable=SC2086
	"$py" -m pip install $pip_opts --target "$tmp/site" "$here"
	pythonpath="$tmp/site"
fi

# Run from the temporary directory so `import libvmm` finds the installed copy, not
# the source tree.
cd "$tmp"
PYTHONPATH="$pythonpath" "$py" -c 'import libvmm, sys; print("libvmm bindings", libvmm.__version__, "from", libvmm.__file__, "on Python", sys.version.split()[0])'
PYTHONPATH="$pythonpath" LIBVMM_LIBRARY="$lib" LIBVMM_BUILD_DIR="$build" LIBVMM_SOURCE_DIR="$src" \
	PYTHONDONTWRITEBYTECODE=1 "$py" "$here/tests/run.py"
