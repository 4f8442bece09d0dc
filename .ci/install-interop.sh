#!/usr/bin/env bash
# Set up the real-peer interop harness (tests/interop, tools/pppvm.py):
# qemu + socat + slirp on the host, then build/cache the pppd VM images
# (amd64, and i386 for BSD-Compress).  Idempotent: a second run with all
# present takes well under a second plus the cache check.
#
#   bash .ci/install-interop.sh            # both arches
#   PPPVM_ARCHES=amd64 bash .ci/install-interop.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ARCHES=${PPPVM_ARCHES:-"amd64 i386"}
export DEBIAN_FRONTEND=noninteractive

updated=0
apt_update() {
    # a mirror in mid-sync can fail one index; what matters is checked after
    if [ "$updated" = 0 ]; then
        apt-get update -qq || echo "install-interop: apt-get update reported errors (continuing)" >&2
        updated=1
    fi
}

# command -> Debian package
need=()
for pair in qemu-system-x86_64:qemu-system-x86 qemu-system-i386:qemu-system-x86 \
            socat:socat slirp-fullbolt:slirp busybox:busybox-static \
            timeout:coreutils apt-get:apt dpkg-deb:dpkg; do
    cmd=${pair%%:*} pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    apt_update
    # shellcheck disable=SC2046
    apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
fi

# the i386 image is made of i386 packages: apt must know that architecture
case " $ARCHES " in *" i386 "*)
    if ! dpkg --print-foreign-architectures | grep -qx i386; then
        dpkg --add-architecture i386
        updated=0
        apt_update
    fi
    apt-cache show ppp:i386 >/dev/null 2>&1 || apt_update
esac
apt-cache show ppp >/dev/null 2>&1 || apt_update

rc=0
for arch in $ARCHES; do
    if ! python3 tools/pppvm.py build --arch "$arch"; then
        echo "install-interop: building the $arch VM image failed" >&2
        rc=1
    fi
done
exit $rc
