#!/usr/bin/env bash
# Make sure a Docker engine answers. A running engine (a laptop's, a CI's) is left
# alone; otherwise, as root on Debian, install Debian's docker.io and start it.
set -euo pipefail

if docker info >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "No Docker engine answers 'docker info'. Start one (or run as root on Debian so this script can install docker.io)." >&2
  exit 1
fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "Installing Debian's docker.io ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io >/dev/null
fi
if [ "$(ps -o comm= -p 1 2>/dev/null)" = systemd ]; then
  systemctl start docker
else
  echo "Starting dockerd in the background (log: /var/log/dockerd.log) ..."
  nohup dockerd >/var/log/dockerd.log 2>&1 &
fi
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 1
done
echo "dockerd did not answer within 60 s; see /var/log/dockerd.log" >&2
exit 1
