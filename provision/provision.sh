#!/usr/bin/env bash
# Host set-up for buildcage on Debian 12 as root. Idempotent: every step checks first and says
# "ok" when there is nothing to do, so a second run is quick and changes nothing.
#   1. system packages           4. podman API service on a unix socket
#   2. podman settings           5. local registry on 127.0.0.1:5000
#   3. user-namespace ranges     6. builder image and the examples' base image
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
SOCKET=${BUILDCAGE_SOCKET:-/run/podman/podman.sock}
REGISTRY=127.0.0.1:5000
STATE=/var/lib/buildcage
BUILDER_IMAGE=localhost/buildcage/builder:latest
BASE_IMAGE=localhost/buildcage/busybox:latest
BASE_REMOTE=$REGISTRY/buildcage/busybox:latest

say() { printf '%-10s %s\n' "$1" "$2"; }

# Long-running services start from / with a clean environment: they outlive the shell that
# started them, and conmon fails ("Failed to get working directory") once the directory they
# were started in is deleted, e.g. a CI checkout or a test's temporary directory.
daemon() {
  local log=$1; shift
  ( cd / || exit 1
    exec setsid env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      HOME=/root LANG=C.UTF-8 nohup "$@" > "$log" 2>&1 < /dev/null
  ) &
}

# 1. Packages -----------------------------------------------------------------------------------
packages=(podman runc fuse-overlayfs buildah skopeo docker-registry debootstrap busybox-static
          netavark containernetworking-plugins uidmap curl tmux apache2-utils)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say packages "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" > /var/log/buildcage-apt.log
else
  say packages "ok (all ${#packages[@]} installed)"
fi

# write_if_changed FILE CONTENT: writes only when the content differs, and says so.
write_if_changed() {
  local file=$1 content=$2
  if [ -f "$file" ] && [ "$(cat "$file")" = "$content" ]; then
    say config "ok $file"
  else
    mkdir -p "$(dirname "$file")"
    printf '%s\n' "$content" > "$file"
    say config "wrote $file"
  fi
}

# 2. podman settings: runc (crun refuses the hybrid cgroup layout here) and ulimits inside the
#    hard limits of this machine (podman's defaults ask for more and crun/runc fail).
write_if_changed /etc/containers/containers.conf.d/50-buildcage.conf '# Written by buildcage provision/provision.sh
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"'

# 3. User namespaces: podman's userns=auto takes its ranges from the "containers" entries.
for f in /etc/subuid /etc/subgid; do
  if grep -q '^containers:' "$f" 2>/dev/null; then
    say userns "ok $f"
  else
    echo 'containers:200000:1000000' >> "$f"
    say userns "added containers:200000:1000000 to $f"
  fi
done
# fuse-overlayfs in a user-namespaced builder opens /dev/fuse as a mapped (non-host-root) user.
if [ "$(stat -c %a /dev/fuse)" != 666 ]; then
  chmod 0666 /dev/fuse
  say fuse "chmod 0666 /dev/fuse (user-namespaced builders need it)"
else
  say fuse "ok /dev/fuse 0666"
fi

# 4. podman API service -------------------------------------------------------------------------
ping_podman() { curl -fsS --max-time 2 --unix-socket "$SOCKET" http://d/_ping > /dev/null 2>&1; }
if ping_podman; then
  say podman "ok service answers on $SOCKET"
else
  mkdir -p "$(dirname "$SOCKET")" "$STATE"
  daemon /var/log/buildcage-podman-service.log podman system service --time=0 "unix://$SOCKET"
  for _ in $(seq 50); do ping_podman && break; sleep 0.2; done
  ping_podman || { echo "podman service did not start: see /var/log/buildcage-podman-service.log" >&2; exit 1; }
  say podman "started service on $SOCKET"
fi

# 5. Local registry -----------------------------------------------------------------------------
# Passwords go through stdin, never a command line.
# Every request needs credentials (distribution's htpasswd auth has no read-only mode): a RUN
# step has no network, but if anything ever reaches the registry without buildcage's trusted
# phases, it can neither upload, overwrite nor delete the bases every later build pulls. The
# password is made once; root's containers auth file holds it (buildcage mounts that file into
# its trusted phases only).
AUTHFILE=/root/.config/containers/auth.json
if [ ! -s "$STATE/registry.password" ]; then
  mkdir -p "$STATE"
  (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$STATE/registry.password")
  say registry "made a password ($STATE/registry.password)"
fi
password=$(cat "$STATE/registry.password")
if [ ! -s "$STATE/registry.htpasswd" ] || \
   ! printf '%s' "$password" | htpasswd -vi "$STATE/registry.htpasswd" buildcage > /dev/null 2>&1
then
  (umask 077; printf '%s' "$password" | htpasswd -Bin buildcage > "$STATE/registry.htpasswd")
  say registry "wrote $STATE/registry.htpasswd"
fi
write_if_changed "$STATE/registry.yml" "# Written by buildcage provision/provision.sh
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $STATE/registry
  delete:
    enabled: true
auth:
  htpasswd:
    realm: buildcage-registry
    path: $STATE/registry.htpasswd
http:
  addr: $REGISTRY"
registry_status() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$REGISTRY/v2/" 2>/dev/null || true; }
ping_registry() { [ "$(registry_status)" = 401 ]; }
if [ "$(registry_status)" = 200 ]; then
  # A registry from before credentials (or another one): restart it with this config.
  pkill -f "docker-registry serve $STATE/registry.yml" || true
  for _ in $(seq 50); do [ "$(registry_status)" = 000 ] && break; sleep 0.2; done
  say registry "stopped the registry that took writes without credentials"
fi
if ping_registry; then
  say registry "ok answers on $REGISTRY (credentials required)"
else
  mkdir -p "$STATE/registry"
  daemon /var/log/buildcage-registry.log docker-registry serve "$STATE/registry.yml"
  for _ in $(seq 50); do ping_registry && break; sleep 0.2; done
  ping_registry || { echo "registry did not start: see /var/log/buildcage-registry.log" >&2; exit 1; }
  say registry "started on $REGISTRY (data in $STATE/registry, credentials required)"
fi
if ! grep -qF "$(printf 'buildcage:%s' "$password" | base64 -w0)" "$AUTHFILE" 2>/dev/null; then
  mkdir -p "$(dirname "$AUTHFILE")"
  printf '%s' "$password" | podman login --authfile "$AUTHFILE" --tls-verify=false \
    -u buildcage --password-stdin "$REGISTRY" > /dev/null
  chmod 600 "$AUTHFILE"
  say registry "credentials in $AUTHFILE"
else
  say registry "ok credentials in $AUTHFILE"
fi

# 6. Images: rebuilt only when missing or when their recipe changed (label buildcage.recipe).
recipe_of() { cat "$@" | sha256sum | cut -c1-16; }
image_recipe() { podman image inspect --format '{{index .Labels "buildcage.recipe"}}' "$1" 2>/dev/null || true; }

builder_recipe=$(recipe_of "$here"/builder/*)
have=$(image_recipe "$BUILDER_IMAGE")
if [ -n "$have" ] && { [ "$have" = "$builder_recipe" ] || [ "$have" = upstream ]; }; then
  say builder "ok $BUILDER_IMAGE"
elif timeout 60 podman pull -q quay.io/buildah/stable > /dev/null 2>&1; then
  # The article's own image, when a registry answers; labelled so the next run keeps it.
  printf 'FROM quay.io/buildah/stable\nLABEL buildcage.recipe=upstream\n' \
    | podman build -q -t "$BUILDER_IMAGE" - > /dev/null
  say builder "pulled quay.io/buildah/stable as $BUILDER_IMAGE"
else
  say builder "no registry answers for quay.io/buildah/stable: building offline"
  bash "$here/builder/build-offline.sh" "$BUILDER_IMAGE" "$builder_recipe"
  podman image prune -f > /dev/null
  say builder "built $BUILDER_IMAGE offline"
fi

base_recipe=$(recipe_of "$here"/base/*)
if [ "$(image_recipe "$BASE_IMAGE")" = "$base_recipe" ]; then
  say base "ok $BASE_IMAGE"
else
  bash "$here/base/build-busybox.sh" "$BASE_IMAGE" "$base_recipe"
  podman image prune -f > /dev/null
  say base "built $BASE_IMAGE"
fi
# The examples name the base by its registry reference, so the host store holds that name too
# (host-ro and host-rw then use it with no pull) and the registry serves it to empty stores.
base_id=$(podman image inspect --format '{{.Id}}' "$BASE_IMAGE")
if [ "$(podman image inspect --format '{{.Id}}' "$BASE_REMOTE" 2>/dev/null)" != "$base_id" ]; then
  podman tag "$BASE_IMAGE" "$BASE_REMOTE"
  say base "tagged $BASE_REMOTE"
fi
remote_digest=$(skopeo inspect --authfile "$AUTHFILE" --tls-verify=false --format '{{.Labels}}' "docker://$BASE_REMOTE" 2>/dev/null || true)
if [[ "$remote_digest" == *"$base_recipe"* ]]; then
  say base "ok $BASE_REMOTE in the registry"
else
  podman push -q --authfile "$AUTHFILE" --tls-verify=false "$BASE_REMOTE" > /dev/null
  say base "pushed $BASE_REMOTE"
fi
say done "host ready: podman $SOCKET, registry $REGISTRY, builder $BUILDER_IMAGE"
