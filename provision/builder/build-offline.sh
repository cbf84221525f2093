#!/usr/bin/env bash
# Builds the buildcage builder image without any container registry, from Debian packages,
# configured as the article's Containerfile configures quay.io/buildah/stable:
#   - buildah + fuse-overlayfs, storage.conf with mount_program = fuse-overlayfs
#   - additionalimagestores = ["/var/lib/shared"] and the empty lock files that store needs
#   - BUILDAH_ISOLATION=chroot, PATH set (podman import sets none), netavark present
#     (the host store records netavark as its network backend).
# Usage: build-offline.sh IMAGE_NAME RECIPE_HASH
set -euo pipefail

image=${1:?image name}
recipe=${2:?recipe hash}
here=$(cd "$(dirname "$0")" && pwd)

# The mirror is whatever this machine's apt uses; never a hard-coded host.
mirror=$(grep -rhoE '^(URIs:|deb)\s+\S+' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
           /etc/apt/sources.list.d/*.list 2>/dev/null \
         | awk '{print $2}' | grep -E '/debian/?$' | head -n1 || true)
if [ -z "$mirror" ]; then
  echo "build-offline: no Debian mirror found in /etc/apt sources" >&2
  exit 1
fi
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")

work=$(mktemp -d /var/tmp/buildcage-builder.XXXXXX)
trap 'rm -rf "$work"' EXIT
root="$work/root"

echo "build-offline: debootstrap $suite from $mirror (about a minute)"
debootstrap --variant=minbase \
  --include=buildah,fuse-overlayfs,ca-certificates,containernetworking-plugins,netavark \
  "$suite" "$root" "$mirror" > "$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

install -m 0644 "$here/storage.conf" "$root/etc/containers/storage.conf"
install -m 0644 "$here/storage-kernel-overlay.conf" "$root/etc/containers/storage-kernel-overlay.conf"
mkdir -p "$root/var/lib/shared/overlay-images" "$root/var/lib/shared/overlay-layers" \
         "$root/var/lib/containers/storage"
touch "$root/var/lib/shared/overlay-images/images.lock" \
      "$root/var/lib/shared/overlay-layers/layers.lock"
# Smaller image: caches and docs are not needed to build.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
       "$root"/usr/share/doc/* "$root"/usr/share/man/*

tar -C "$root" -cf "$work/rootfs.tar" .
podman import -q \
  --change 'ENV BUILDAH_ISOLATION=chroot' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change "LABEL buildcage.recipe=$recipe" \
  --change 'LABEL buildcage.origin=offline-debian' \
  --change 'WORKDIR /' \
  "$work/rootfs.tar" "$image" > /dev/null
echo "build-offline: imported $image"
