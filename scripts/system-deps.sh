#!/usr/bin/env bash
# Install Debian packages the product can use. With --optional, a failure is reported, not fatal:
# the parts that need the package say so (tests skip with a reason, the demo falls back).
set -u
optional=0
if [ "${1:-}" = "--optional" ]; then optional=1; shift; fi
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(dataset-fashion-mnist chromium chromium-driver)
missing=()
for p in "${pkgs[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; fi
fi
if [ "$(id -u)" = 0 ] || [ -n "$sudo" ]; then
    echo "Installing Debian packages: ${missing[*]}"
    if $sudo apt-get update -qq >/dev/null 2>&1 && \
       DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
        exit 0
    fi
fi
echo "Could not install Debian packages: ${missing[*]}."
echo "Install them yourself with: sudo apt-get install -y ${missing[*]}"
[ $optional = 1 ] && exit 0 || exit 1
