"""The lab's Docker driver: every container, exec, network and image call the lab makes, through the Docker SDK
(the `docker` package) rather than the CLI's text. Nodes' network namespaces and veth cables stay `ip` work."""

from __future__ import annotations

import functools
import io
import tarfile
import time
from typing import Any, Dict, Iterable, List, Optional

import docker
from docker.errors import APIError, NotFound
from docker.types import IPAMConfig, IPAMPool, Mount

from .spec import LabError

# Importing a debootstrapped root or saving the vLLM image takes minutes on this machine: no read timeout there.
TIMEOUT = 900


@functools.lru_cache(maxsize=1)
def client() -> docker.DockerClient:
    try:
        return docker.from_env(timeout=TIMEOUT)
    except docker.errors.DockerException as exc:
        raise LabError("cannot reach dockerd (%s): run `make lab-host` as root" % exc) from exc


# --- containers -----------------------------------------------------------------------------------------------

def find(name: str) -> Optional[Any]:
    """The container of that name (or id), or None."""
    try:
        return client().containers.get(name)
    except NotFound:
        return None


def get(name: str) -> Any:
    found = find(name)
    if found is None:
        raise LabError("no container %s" % name)
    return found


def labelled(label: str) -> List[Any]:
    """Every container, running or not, that carries `label`."""
    return client().containers.list(all=True, filters={"label": label})


def pid(name: str) -> int:
    c = get(name)
    c.reload()
    return int(c.attrs["State"].get("Pid") or 0)


def run_node(name: str, image: str, hostname: str, network: str, address: str, labels: Dict[str, str]) -> None:
    """Start a node: systemd as PID 1 in a container with a fixed management address.

    --privileged fails here (no CAP_SYS_RESOURCE); these give systemd what it needs to boot as PID 1. Docker inside
    a node keeps its data on an anonymous volume (the host's ext4), where it can use overlay2: on the container's
    own overlay root it would fall back to vfs, which copies a whole image for every container it starts."""
    api = client().api
    host_config = api.create_host_config(
        cap_add=["ALL"], cap_drop=["SYS_RESOURCE"],
        security_opt=["seccomp=unconfined", "apparmor=unconfined"],
        cgroupns="host",
        binds=["/sys/fs/cgroup:/sys/fs/cgroup:rw"],
        mounts=[Mount(target="/var/lib/docker", source=None, type="volume")],
        tmpfs={"/run": "", "/run/lock": ""},
        network_mode=network)
    # the CLI's --security-opt systempaths=unconfined: nothing of /proc or /sys masked or read-only
    host_config["MaskedPaths"], host_config["ReadonlyPaths"] = [], []
    networking = api.create_networking_config({network: api.create_endpoint_config(ipv4_address=address)})
    created = api.create_container(image, name=name, hostname=hostname, labels=labels, detach=True,
                                   stop_signal="SIGRTMIN+3", host_config=host_config, networking_config=networking)
    api.start(created["Id"])


def execute(name: str, args: List[str], check: bool = True) -> str:
    """Run a command in a container; its output (stdout and stderr), or LabError when it fails and `check`."""
    code, out = get(name).exec_run(args)
    text = out.decode(errors="replace") if out else ""
    if check and code != 0:
        raise LabError("%s on %s failed (%d): %s" % (" ".join(args), name, code, text.strip()))
    return text


def returncode(name: str, args: List[str]) -> int:
    code, _ = get(name).exec_run(args)
    return int(code)


def output(name: str, args: List[str]) -> str:
    """stdout only, whatever the exit code (systemctl is-system-running exits 1 while booting)."""
    _, (out, _err) = get(name).exec_run(args, demux=True)
    return out.decode(errors="replace") if out else ""


def put_file(name: str, path: str, content: str, uid: int, gid: int, mode: int) -> None:
    """Write one file into a container, owned and moded as given (its directory must exist)."""
    data = content.encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(path.rsplit("/", 1)[1])
        info.size, info.uid, info.gid, info.mode, info.mtime = len(data), uid, gid, mode, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    if not get(name).put_archive(path.rsplit("/", 1)[0] or "/", buf.getvalue()):
        raise LabError("could not write %s on %s" % (path, name))


def stop(name: str, timeout: int = 20) -> None:
    get(name).stop(timeout=timeout)


def start(name: str) -> None:
    get(name).start()


def remove(name: str) -> None:
    """Remove a container and its anonymous volumes, running or not."""
    get(name).remove(force=True, v=True)


# --- networks -------------------------------------------------------------------------------------------------

def network_labels(name: str) -> Optional[Dict[str, str]]:
    """The labels of a network, or None when there is no network of that name."""
    try:
        return client().networks.get(name).attrs.get("Labels") or {}
    except NotFound:
        return None


def create_network(name: str, subnet: str, labels: Dict[str, str]) -> None:
    client().networks.create(name, driver="bridge", labels=labels,
                             ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=subnet)]))


def remove_network(name: str) -> None:
    client().networks.get(name).remove()


# --- images ---------------------------------------------------------------------------------------------------

def image_exists(image: str) -> bool:
    try:
        client().images.get(image)
        return True
    except NotFound:
        return False


def import_stream(stream: Any, image: str, changes: Iterable[str]) -> None:
    """`docker import`: a root filesystem tar read from `stream`, with Dockerfile `changes` (CMD, ENV, LABEL)."""
    repository, _, tag = image.rpartition(":")
    try:
        result = client().api.import_image_from_stream(stream, repository=repository, tag=tag,
                                                      changes=list(changes))
    except APIError as exc:
        raise LabError("importing %s failed: %s" % (image, exc)) from exc
    if "errorDetail" in str(result) or not image_exists(image):
        raise LabError("importing %s failed: %s" % (image, str(result)[-400:]))


def save(image: str, path: str) -> None:
    """`docker save`: the image (with its name) as a tar archive at `path`."""
    with open(path, "wb") as fh:
        for chunk in client().images.get(image).save(named=True):
            fh.write(chunk)
