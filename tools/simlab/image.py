"""The node image: Debian bookworm from debootstrap, imported into Docker, tagged with the hash of its recipe.

There is no container registry here: the image is built from Debian's archive, once, and rebuilt exactly when
this recipe changes (the tag carries its content hash).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from typing import List

from . import engine

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES: List[str] = [
    "systemd", "systemd-sysv", "dbus", "udev", "python3", "python3-apt", "openssh-server", "sudo", "iproute2",
    "iputils-ping", "nftables", "netplan.io", "ethtool", "procps", "socat", "netcat-openbsd", "ca-certificates",
    "kmod", "less", "lldpd",
]
# Run inside the new root. Every node gets its own SSH host keys and machine id at first boot, a cluster user
# with sudo (like the real boxes' admin user), systemd-networkd (netplan's renderer), and lldpd announcing the
# fabric ports every second: the lab's cable tester.
SETUP = r"""
set -eu
rm -f /etc/ssh/ssh_host_*
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
useradd -m -s /bin/bash llmlab
echo 'llmlab ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/llmlab
chmod 0440 /etc/sudoers.d/llmlab
cat > /etc/systemd/system/ssh-hostkeys.service <<'UNIT'
[Unit]
Description=Generate this node's own SSH host keys
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
[Install]
WantedBy=multi-user.target
UNIT
systemctl enable ssh-hostkeys.service systemd-networkd.service lldpd.service
systemctl mask getty@tty1.service serial-getty@console.service console-getty.service \
    systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer
echo 'DAEMON_ARGS="-I enp*,enP*,thunderbolt*"' > /etc/default/lldpd
printf 'configure lldp tx-interval 1\n' > /etc/lldpd.d/llmlab.conf
apt-get clean
# the package lists stay, as on a real installed box (check mode needs them to tell what it would install)
rm -rf /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/*
"""
REPOSITORY = "llmlab-node"


def recipe_hash() -> str:
    h = hashlib.sha256()
    for part in (SUITE, MIRROR, " ".join(PACKAGES), SETUP):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:12]


def tag() -> str:
    return "%s:%s" % (REPOSITORY, recipe_hash())


def exists(image: str) -> bool:
    return engine.image_exists(image)


def import_root(root: str, image: str, changes: List[str]) -> None:
    """Import a root directory as ``image`` with Dockerfile ``changes`` (CMD, ENV, LABEL), streamed from tar."""
    tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
    try:
        engine.import_stream(tar.stdout, image, changes)
    finally:
        if tar.stdout:
            tar.stdout.close()
    if tar.wait() != 0:
        raise RuntimeError("tar of the image root failed")


def build(log=print) -> str:
    """Build the image unless an image of this recipe exists. Returns its tag."""
    image = tag()
    if exists(image):
        log("image %s is up to date" % image)
        return image
    start = time.time()
    work = tempfile.mkdtemp(prefix="llmlab-image-")
    root = os.path.join(work, "root")
    try:
        log("building %s with debootstrap (%s, %d packages)" % (image, SUITE, len(PACKAGES)))
        subprocess.run(["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES), SUITE, root, MIRROR],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["chroot", root, "/bin/sh", "-c", SETUP], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        import_root(root, image, ['CMD ["/sbin/init"]', "LABEL llmlab.recipe=" + recipe_hash()])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log("built %s in %.0f s" % (image, time.time() - start))
    return image
