#!/usr/bin/env bash
# Installs the Debian packages Vigie's tests and demo need, when they are missing.
# Usage: scripts/system-deps.sh [test|demo]. Non-interactive; needs root (or prints the command).
set -euo pipefail
what=${1:-test}
# demo: the broker (JDK, Maven, kcat to probe it); test adds the real clients and servers the tests drive.
pkgs=(default-jdk-headless maven kcat)
if [ "$what" = test ]; then
  pkgs+=(protobuf-compiler chromium ffmpeg python3-gi gir1.2-gst-rtsp-server-1.0
         gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
         gstreamer1.0-plugins-ugly gstreamer1.0-libav postgresql prometheus)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# A JDK from elsewhere (e.g. Temurin) and a Maven on the PATH will do for the broker.
if command -v java >/dev/null && command -v mvn >/dev/null; then
  missing=("${missing[@]/default-jdk-headless}"); missing=("${missing[@]/maven}")
fi
read -r -a missing <<<"${missing[*]:-}"
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}" >&2
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
if [ -n "$sudo" ] && ! command -v sudo >/dev/null; then
  echo "run as root: apt-get install -y ${missing[*]}" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The prometheus package (its promtool too) is for the monitoring tests, which run their own on a free port:
# the daemon it enables on 9090 is not wanted.
if [[ " ${missing[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
  $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
