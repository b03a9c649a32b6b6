#!/usr/bin/env bash
# Mounts a GCS bucket read-only with gcsfuse on one Cloud TPU VM worker (run
# on every worker by trainer/launch_tpu.sh --mount_bucket). Idempotent.
#
#   bash deploy/tpu/mount_bucket.sh BUCKET MOUNT_POINT
#
# Why: the ArrayRecord library (the grain input) reads local files only. Given
# a gs:// path it does not fail but hangs, so the trainer refuses gs:// for
# ArrayRecord shards; through this mount they are local paths
# (MOUNT_POINT/path/in/bucket). TFRecord shards (tf.data) read gs:// directly.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: mount_bucket.sh BUCKET MOUNT_POINT" >&2
  exit 2
fi
bucket="${1#gs://}"
bucket="${bucket%%/*}"
mount_point="$2"

if mountpoint -q "${mount_point}" 2>/dev/null; then
  echo "mount_bucket: ${mount_point} is mounted already"
  exit 0
fi
if ! command -v gcsfuse >/dev/null; then
  # Google's package repository for gcsfuse, as its install guide gives it.
  codename="$(lsb_release -c -s)"
  echo "deb [signed-by=/usr/share/keyrings/cloud.google.asc] https://packages.cloud.google.com/apt gcsfuse-${codename} main" \
    | sudo tee /etc/apt/sources.list.d/gcsfuse.list >/dev/null
  curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo tee /usr/share/keyrings/cloud.google.asc >/dev/null
  sudo apt-get update -qq
  sudo apt-get install -y -qq gcsfuse
fi
sudo mkdir -p "${mount_point}"
sudo chown "$(id -u):$(id -g)" "${mount_point}"
# Read-only: training never writes its data. --implicit-dirs: builds written by
# Beam have no directory objects.
gcsfuse --implicit-dirs -o ro "${bucket}" "${mount_point}"
echo "mount_bucket: gs://${bucket} at ${mount_point} (read-only)"
