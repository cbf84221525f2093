#!/usr/bin/env bash
# Makes the small base image of the examples from Debian's busybox-static, with no registry:
# a root filesystem of /bin/busybox and its applet links, imported with podman.
# Usage: build-busybox.sh IMAGE_NAME RECIPE_HASH
set -euo pipefail

image=${1:?image name}
recipe=${2:?recipe hash}
work=$(mktemp -d /var/tmp/buildcage-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
root="$work/root"

mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,proc,sys,dev,var,run,home}
chmod 1777 "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
# Absolute links inside the image: `busybox --install -s DIR` makes them for every applet.
for applet in $("$root/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -sf /bin/busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"

tar -C "$root" -cf "$work/rootfs.tar" .
podman import -q \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/sh"]' \
  --change "LABEL buildcage.recipe=$recipe" \
  "$work/rootfs.tar" "$image" > /dev/null
echo "build-busybox: imported $image"
