"""node_facts' parsers on recorded outputs of a GB10 box, a Strix Halo box and a lab node."""

from __future__ import annotations

import os

from ansible_collections.llmlab.cluster.plugins.module_utils import hwfacts

GB10_MEMINFO = "MemTotal:       127600748 kB\nMemFree:        90000000 kB\nMemAvailable:   118566368 kB\n"
GB10_OS = ('PRETTY_NAME="Ubuntu 24.04.3 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\n')
# nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader,nounits on a GB10:
# the GPU has no memory of its own, so memory.total is [N/A] (NVIDIA's DGX Spark known issues).
GB10_SMI = "NVIDIA GB10, [N/A], 580.95.05, 12.1\n"
DISCRETE_SMI = "NVIDIA GeForce RTX 4090, 24564, 570.86.10, 8.9\nNVIDIA GeForce RTX 4090, 24564, 570.86.10, 8.9\n"
STRIX_OS = 'NAME="Fedora Linux"\nVERSION_ID=42\nID=fedora\nPRETTY_NAME="Fedora Linux 42 (Workstation Edition)"\n'
STRIX_ROCMINFO = """ROCk module is loaded
=====================
HSA System Attributes
=====================
Runtime Version:         1.1

==========
HSA Agents
==========
*******
Agent 1
*******
  Name:                    AMD RYZEN AI MAX+ 395 w/ Radeon 8060S
  Marketing Name:          AMD RYZEN AI MAX+ 395 w/ Radeon 8060S
  Vendor Name:             CPU
  Device Type:             CPU
*******
Agent 2
*******
  Name:                    gfx1151
  Uuid:                    GPU-XX
  Marketing Name:          AMD Radeon Graphics
  Vendor Name:             AMD
  Device Type:             GPU
  Compute Unit:            40
"""
LAB_OS = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n'


def test_gb10() -> None:
    assert hwfacts.parse_meminfo(GB10_MEMINFO) == {"memory_gb": 130.66, "memory_available_gb": 121.41}
    assert hwfacts.parse_os_release(GB10_OS) == {"id": "ubuntu", "version_id": "24.04",
                                                  "pretty_name": "Ubuntu 24.04.3 LTS", "family": "debian"}
    assert hwfacts.parse_nvidia_smi(GB10_SMI) == [{"vendor": "nvidia", "name": "NVIDIA GB10", "memory_gb": None,
                                                   "driver": "580.95.05", "arch": "12.1", "unified_memory": True}]


def test_discrete_nvidia() -> None:
    gpus = hwfacts.parse_nvidia_smi(DISCRETE_SMI)
    assert len(gpus) == 2 and gpus[0]["memory_gb"] == 25.76 and gpus[0]["unified_memory"] is False


def test_strix_halo() -> None:
    assert hwfacts.parse_os_release(STRIX_OS)["family"] == "fedora"
    assert hwfacts.parse_rocminfo(STRIX_ROCMINFO) == [{"vendor": "amd", "name": "AMD Radeon Graphics",
                                                       "memory_gb": None, "driver": None, "arch": "gfx1151",
                                                       "unified_memory": True}]


def test_lab_node() -> None:
    assert hwfacts.parse_os_release(LAB_OS)["family"] == "debian"
    assert hwfacts.parse_nvidia_smi("") == [] and hwfacts.parse_rocminfo("") == []


def _nic(root, name: str, mac: str, speed: str, carrier: str, driver: str = "", rdma: str = "") -> None:
    base = root / "class" / "net" / name
    base.mkdir(parents=True)
    for f, v in (("address", mac), ("mtu", "9000"), ("speed", speed), ("carrier", carrier), ("operstate", "up")):
        (base / f).write_text(v + "\n")
    if driver:
        (root / "bus" / "pci" / "drivers" / driver).mkdir(parents=True, exist_ok=True)
        (base / "device").mkdir()
        os.symlink(str(root / "bus" / "pci" / "drivers" / driver), str(base / "device" / "driver"))
    if rdma:
        ndir = root / "class" / "infiniband" / rdma / "device" / "net" / name
        ndir.mkdir(parents=True)


def test_sysfs_nics_with_roce(tmp_path) -> None:
    _nic(tmp_path, "enp1s0f0np0", "4c:bb:47:00:00:01", "200000", "1", "mlx5_core", "rocep1s0f0")
    _nic(tmp_path, "enP2p1s0f0np0", "4c:bb:47:00:00:03", "-1", "0", "mlx5_core", "roceP2p1s0f0")
    _nic(tmp_path, "enP7s7", "4c:bb:47:00:00:09", "10000", "1", "r8169")
    _nic(tmp_path, "veth0", "02:00:00:00:00:01", "10000", "1")
    (tmp_path / "class" / "net" / "lo").mkdir()
    nics = {n["name"]: n for n in hwfacts.sysfs_nics(str(tmp_path))}
    assert sorted(nics) == ["enP2p1s0f0np0", "enP7s7", "enp1s0f0np0", "veth0"]
    assert nics["enp1s0f0np0"] == {"name": "enp1s0f0np0", "mac": "4c:bb:47:00:00:01", "mtu": 9000,
                                   "speed_mbps": 200000, "driver": "mlx5_core", "virtual": False, "carrier": True,
                                   "operstate": "up", "rdma_device": "rocep1s0f0"}
    assert nics["enP2p1s0f0np0"]["speed_mbps"] is None and nics["enP2p1s0f0np0"]["carrier"] is False
    assert nics["enP7s7"]["rdma_device"] is None
    assert nics["veth0"]["virtual"] is True and nics["veth0"]["driver"] is None


def _cpu(root, n: int, package: str, core: str) -> None:
    topo = root / "devices" / "system" / "cpu" / ("cpu%d" % n) / "topology"
    topo.mkdir(parents=True)
    (topo / "physical_package_id").write_text(package + "\n")
    (topo / "core_id").write_text(core + "\n")


def test_physical_cores_count_smt_siblings_once(tmp_path) -> None:
    for n in range(8):                      # 4 cores with 2 threads each (Strix Halo's layout, smaller)
        _cpu(tmp_path, n, "0", str(n % 4))
    assert hwfacts.physical_cores(range(8), str(tmp_path)) == 4
    assert hwfacts.physical_cores([0, 4], str(tmp_path)) == 1      # a cpuset of two siblings
    assert hwfacts.physical_cores([0, 1], str(tmp_path)) == 2
    _cpu(tmp_path, 8, "1", "0")             # core 0 of a second package is another core
    assert hwfacts.physical_cores([0, 8], str(tmp_path)) == 2
    assert hwfacts.physical_cores([0, 9], str(tmp_path)) is None   # sysfs does not say: the caller counts CPUs
