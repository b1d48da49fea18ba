#!/usr/bin/env bash
# Make this machine able to run the simulated lab: Debian's docker.io and debootstrap when missing, dockerd
# started when none runs. Idempotent; needs root (the lab does: namespaces, veth pairs).
set -euo pipefail
if [ "$(id -u)" != 0 ]; then echo "lab-host: run as root (the lab creates namespaces and veth pairs)" >&2; exit 2; fi
need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v nsenter >/dev/null 2>&1 || need+=(util-linux)
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
  echo "lab-host: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  echo "lab-host: starting dockerd"
  mkdir -p /var/log
  nohup dockerd >/var/log/llmlab-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "lab-host: dockerd did not start; see /var/log/llmlab-dockerd.log" >&2; exit 1; }
fi
echo "lab-host: docker $(docker version -f '{{.Server.Version}}'), debootstrap ready"
