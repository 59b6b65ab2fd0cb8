#!/usr/bin/env bash
# Build the busybox test image from Debian's static busybox and push it to a registry.
#
#   tests/images/build.sh [--creds USER:PASS] REGISTRY [REPO:TAG...]
#
# REGISTRY is host:port of a plain-HTTP registry (for example 127.0.0.1:5000).
# The image is built once and pushed as REGISTRY/REPO:TAG for each name given
# (default: REGISTRY/busybox:latest).
# The rootfs holds /bin/busybox with a symlink per applet, /etc/passwd and
# /etc/group with root, /www/index.html (served by `httpd -h /www`) and
# /bin/berth-probe, the escape probes of tests/e2e/test_escape.py (probe.c, static).
# The default command is `sh`, as in the Docker Hub image.
#
# Needs: busybox-static (/usr/bin/busybox), gcc and libc6-dev (a static C program),
# umoci, skopeo. No docker.
# Set BERTH_IMAGE_KEEP=DIR to keep the OCI layout in DIR instead of a temp dir.
set -euo pipefail

usage() {
    echo "usage: $0 [--creds USER:PASS] REGISTRY [REPO:TAG...]" >&2
    exit 2
}

creds=""
while [ $# -gt 0 ]; do
    case "$1" in
        --creds) creds="${2:?}"; shift 2 ;;
        -h|--help) usage ;;
        -*) usage ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || usage
registry="$1"
shift
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(busybox:latest)

busybox=/usr/bin/busybox
here="$(cd "$(dirname "$0")" && pwd)"
for tool in "$busybox" gcc umoci skopeo; do
    command -v "$tool" >/dev/null || { echo "$0: $tool is missing" >&2; exit 1; }
done
# A dynamically linked busybox would not run inside the image.
if ldd "$busybox" >/dev/null 2>&1; then
    echo "$0: $busybox is dynamically linked (install busybox-static)" >&2
    exit 1
fi

if [ -n "${BERTH_IMAGE_KEEP:-}" ]; then
    work="$BERTH_IMAGE_KEEP"
    rm -rf "$work"
    mkdir -p "$work"
else
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
fi

rootfs="$work/rootfs"
mkdir -p "$rootfs"/{bin,etc,www,root,tmp,proc,sys,dev,var/log}
chmod 1777 "$rootfs/tmp"
chmod 700 "$rootfs/root"
cp "$busybox" "$rootfs/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
done
gcc -static -Os -s -o "$rootfs/bin/berth-probe" "$here/probe.c"
cat >"$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$rootfs/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP
cat >"$rootfs/www/index.html" <<'HTML'
<html><body><h1>berth test page</h1></body></html>
HTML

# A fixed mtime and order keep the layer digest the same from run to run.
tar -C "$rootfs" --sort=name --mtime=@0 --numeric-owner --owner=0 --group=0 \
    -cf "$work/layer.tar" .

layout="$work/oci"
umoci init --layout "$layout"
umoci new --image "$layout:latest"
umoci raw add-layer --image "$layout:latest" --history.created_by "berth tests/images/build.sh" \
    "$work/layer.tar"
umoci config --image "$layout:latest" \
    --config.cmd sh \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.workingdir / \
    --no-history

dest=(--dest-tls-verify=false)
if [ -n "$creds" ]; then
    dest+=(--dest-creds "$creds")
fi
for name in "${names[@]}"; do
    skopeo --insecure-policy copy --quiet "${dest[@]}" \
        "oci:$layout:latest" "docker://$registry/$name"
    echo "pushed $registry/$name"
done
