#!/usr/bin/env bash
# Everything a fresh Debian machine needs for userppp: the Python package with
# its compiled C core, and (with --tests) what the test suite needs, including
# the Debian packages behind the real-pppd interop tests.
#
#   bash tools/setup.sh           # install userppp (builds the C core)
#   bash tools/setup.sh --tests   # ... plus test tools, qemu, socat, slirp, VM image
#   bash tools/setup.sh --bench   # ... plus what the benchmarks need (matplotlib for
#                                 # bench/bench_link.py --plot); not part of --tests
set -euo pipefail
cd "$(dirname "$0")/.."

want_tests=0
want_bench=0
for arg in "$@"; do
    case "$arg" in
        --tests) want_tests=1 ;;
        --bench) want_bench=1 ;;
    esac
done

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# A C compiler and Python headers for the cffi build of the C core.
command -v gcc >/dev/null 2>&1 || apt_install gcc libc6-dev
python3 -c 'import sysconfig,os,sys; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["include"],"Python.h")) else 1)' \
    || apt_install python3-dev

if [ $want_tests = 1 ]; then
    python3 -m pip install -q --disable-pip-version-check -e '.[test]'
    apt_install iproute2 socat iputils-ping tshark ppp man-db groff-base
    if [ -x .ci/install-interop.sh ] || [ -f .ci/install-interop.sh ]; then
        bash .ci/install-interop.sh
    fi
else
    python3 -m pip install -q --disable-pip-version-check -e .
fi

if [ $want_bench = 1 ]; then
    # bench/bench_link.py --plot draws goodput against baud rate
    python3 -m pip install -q --disable-pip-version-check matplotlib
fi
