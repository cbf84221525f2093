"""ssh:// podman URLs: nothing in them reaches ssh as an option, the host key is checked."""

from __future__ import annotations

import pytest

from tui.engine.ssh_tunnel import SshTunnel, SshTunnelError, parse_ssh_url


def test_a_url_names_user_host_port_and_the_services_socket():
    target = parse_ssh_url("ssh://root@build-host:2222/run/podman/podman.sock")
    assert (target.user, target.host, target.port, target.socket) == (
        "root", "build-host", 2222, "/run/podman/podman.sock")
    assert parse_ssh_url("ssh://10.1.2.3/run/podman/podman.sock").destination == "10.1.2.3"


@pytest.mark.parametrize("url", [
    "ssh://-oProxyCommand=touch%20x/run/podman/podman.sock",
    "ssh://-oProxyCommand=sh@host/run/podman/podman.sock",
    "ssh://root@host",                             # no socket path
    "ssh://root:secret@host/run/podman/podman.sock",  # a password in a config file
    "ssh://root@host:notaport/run/podman/podman.sock",
    "ssh://root@ho st/run/podman/podman.sock",
    "ssh://root@host/run/x:/etc/passwd",           # -L LOCAL:REMOTE must stay two parts
])
def test_hostile_or_broken_urls_are_refused(url):
    with pytest.raises(SshTunnelError):
        parse_ssh_url(url)


def test_ssh_is_asked_to_check_the_host_key_and_never_to_prompt(tmp_path):
    key = tmp_path / "id"
    key.write_text("k")
    tunnel = SshTunnel("ssh://root@build-host:2222/run/podman/podman.sock", identity=str(key),
                       known_hosts=str(tmp_path / "kh"))
    argv = tunnel.argv("/tmp/x/podman.sock")
    assert "StrictHostKeyChecking no" not in " ".join(argv)
    assert ["-o", "BatchMode=yes"] == argv[2:4]
    assert argv[-2:] == ["--", "root@build-host"]  # the destination can never be an option
    assert "-L" in argv and argv[argv.index("-L") + 1] == \
        "/tmp/x/podman.sock:/run/podman/podman.sock"
    assert f"UserKnownHostsFile={tmp_path / 'kh'}" in argv
    assert argv[argv.index("-i") + 1] == str(key)


def test_only_old_empty_tunnel_directories_are_swept(tmp_path):
    import os

    from tui.engine.ssh_tunnel import PREFIX, sweep_stale_dirs

    old_empty, old_live, new_empty = (tmp_path / f"{PREFIX}{n}" for n in ("a", "b", "c"))
    for d in (old_empty, old_live, new_empty):
        d.mkdir()
    (old_live / "podman.sock").write_text("")
    other = tmp_path / "unrelated"
    other.mkdir()
    for d in (old_empty, old_live, other):
        os.utime(d, (1000.0, 1000.0))
    sweep_stale_dirs(tmp_path, now=1000.0 + 3600)
    assert not old_empty.exists()
    assert old_live.exists() and other.exists()
    sweep_stale_dirs(tmp_path)  # now: the new one is seconds old
    assert new_empty.exists()
