#!/usr/bin/env bash
# What the tests need beyond provision.sh: the OpenSSH server binary, for the ssh:// remote
# podman tests (tests/integration/test_remote_real.py start their own sshd on loopback with
# their own keys). The system's ssh service is never started or enabled by this script.
set -euo pipefail
if ! dpkg-query -W -f='${Status}' openssh-server 2>/dev/null | grep -q 'install ok installed'; then
  echo "test-host  installing openssh-server (binary only, for the ssh:// tests)"
  policy=/usr/sbin/policy-rc.d
  had_policy=0; [ -e "$policy" ] && had_policy=1
  if [ "$had_policy" = 0 ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >> /var/log/buildcage-apt.log
  if [ "$had_policy" = 0 ]; then rm -f "$policy"; fi
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true
  fi
else
  echo "test-host  ok (openssh-server installed)"
fi
