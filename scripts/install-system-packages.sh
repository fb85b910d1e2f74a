#!/usr/bin/env bash
# Debian packages the book uses: Fashion-MNIST (offline data) and Chromium (browser tests).
# Skips what is present; does nothing (with a note) where apt-get is not available.
set -euo pipefail

need=()
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need+=(dataset-fashion-mnist)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "note: apt-get not found; install ${need[*]} yourself (Fashion-MNIST can also be" \
       "downloaded by torchvision when online; browser tests are skipped without chromium)" >&2
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "note: not root and no sudo; install ${need[*]} yourself" >&2; exit 0; fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${need[@]}"
