#!/usr/bin/env bash
# Launches MBT training on a Cloud TPU VM (single host or pod slice) with gcloud.
#
# Steps: (1) describe the TPU VM, create it if it does not exist; (2) copy
# this checkout to every worker and install it there (deploy/tpu/setup_worker.sh);
# (3) start `python -m trainer.train` on ALL workers at once, detached, with
# MBT_DISTRIBUTED=1 so the hosts of a pod slice join one JAX job. Shards and
# the workdir should be gs:// paths every worker can read; ArrayRecord shards
# (the grain input) through a gcsfuse mount (--mount_bucket), as the
# ArrayRecord library reads local files only.
#
# Logs stay on each worker in ~/mbt_train.log; follow the first with
#   gcloud compute tpus tpu-vm ssh NAME --zone ZONE --worker=0 --command='tail -f ~/mbt_train.log'
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: trainer/launch_tpu.sh --name NAME --zone ZONE --config CONFIG --workdir gs://... [options] [-- TRAIN_FLAGS...]

Creates (or reuses) a Cloud TPU VM, installs this project on every worker and
starts training on all workers.

Required:
  --name NAME                TPU VM name (reused if it exists)
  --zone ZONE                e.g. us-central2-b
  --config CONFIG            trainer config, e.g. trainer/configs/audioset_as500k.py[:variant]
  --workdir DIR              run directory, gs://BUCKET/... (checkpoints, logs)

Options:
  --project PROJECT          GCP project (default: gcloud's configured one)
  --accelerator_type TYPE    e.g. v4-8, v4-32, v5litepod-16 (default: v4-8)
  --runtime_version VERSION  TPU VM image (default: tpu-ubuntu2204-base)
  --spot                     create a Spot TPU VM
  --skip_install             do not copy or install the project (already there)
  --mount_bucket BUCKET      mount gs://BUCKET read-only with gcsfuse at /mnt/gcs/BUCKET on every
                             worker before training (deploy/tpu/mount_bucket.sh): the way to
                             train from ArrayRecord shards on GCS, e.g. with
                             -- --config.data.train_dir=/mnt/gcs/BUCKET/audioset/as500k
  --dry_run                  print the gcloud commands instead of running them
  -h, --help                 this help

Anything after `--` goes to trainer.train, e.g.
  -- --config.data.train_dir=gs://B/audioset/as500k --config.batch_size=128
USAGE
}

name="" zone="" config="" workdir="" project=""
accelerator_type="v4-8"
runtime_version="tpu-ubuntu2204-base"
spot=0 skip_install=0 dry_run=0
mount_bucket=""
train_flags=()

need_value() {
  if [[ $# -lt 2 || -z "$2" ]]; then
    echo "launch_tpu: $1 needs a value" >&2
    exit 2
  fi
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) need_value "$@"; name="$2"; shift 2 ;;
    --zone) need_value "$@"; zone="$2"; shift 2 ;;
    --config) need_value "$@"; config="$2"; shift 2 ;;
    --workdir) need_value "$@"; workdir="$2"; shift 2 ;;
    --project) need_value "$@"; project="$2"; shift 2 ;;
    --accelerator_type) need_value "$@"; accelerator_type="$2"; shift 2 ;;
    --runtime_version) need_value "$@"; runtime_version="$2"; shift 2 ;;
    --mount_bucket) need_value "$@"; mount_bucket="${2#gs://}"; mount_bucket="${mount_bucket%%/*}"; shift 2 ;;
    --spot) spot=1; shift ;;
    --skip_install) skip_install=1; shift ;;
    --dry_run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; train_flags=("$@"); break ;;
    *) echo "launch_tpu: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

missing=()
[[ -n "${name}" ]] || missing+=(--name)
[[ -n "${zone}" ]] || missing+=(--zone)
[[ -n "${config}" ]] || missing+=(--config)
[[ -n "${workdir}" ]] || missing+=(--workdir)
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "launch_tpu: missing ${missing[*]} (see --help)" >&2
  exit 2
fi
if [[ "${workdir}" != gs://* ]]; then
  echo "launch_tpu: warning: --workdir ${workdir} is not on GCS; each worker would write its own copy" >&2
fi

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
scope=(--zone="${zone}")
[[ -n "${project}" ]] && scope+=(--project="${project}")

# Prints a command (shell-quoted) in dry-run mode, runs it otherwise.
run() {
  if [[ ${dry_run} -eq 1 ]]; then
    printf '%q ' "$@"
    printf '\n'
  else
    "$@"
  fi
}

# 1. The TPU VM.
if [[ ${dry_run} -eq 1 ]]; then
  echo "# if the TPU VM does not exist yet (describe fails), create it:"
  run gcloud compute tpus tpu-vm describe "${name}" "${scope[@]}"
  create_needed=1
elif gcloud compute tpus tpu-vm describe "${name}" "${scope[@]}" >/dev/null 2>&1; then
  echo "launch_tpu: reusing TPU VM ${name}"
  create_needed=0
else
  create_needed=1
fi
if [[ ${create_needed} -eq 1 ]]; then
  create=(gcloud compute tpus tpu-vm create "${name}" "${scope[@]}"
          --accelerator-type="${accelerator_type}" --version="${runtime_version}")
  [[ ${spot} -eq 1 ]] && create+=(--spot)
  run "${create[@]}"
fi

# 2. The project on every worker.
if [[ ${skip_install} -eq 0 ]]; then
  tarball="${TMPDIR:-/tmp}/mbt_src.$$.tar.gz"
  [[ ${dry_run} -eq 1 ]] || trap 'rm -f "${tarball}"' EXIT
  run tar -czf "${tarball}" -C "${repo_root}" --exclude=.git --exclude=.venv --exclude=__pycache__ \
      --exclude='*.egg-info' .
  run gcloud compute tpus tpu-vm scp "${tarball}" "${name}:~/mbt_src.tar.gz" --worker=all "${scope[@]}"
  run gcloud compute tpus tpu-vm ssh "${name}" --worker=all "${scope[@]}" \
      --command="mkdir -p ~/mbt && tar -xzf ~/mbt_src.tar.gz -C ~/mbt && bash ~/mbt/deploy/tpu/setup_worker.sh ~/mbt"
fi

# 3. The data bucket, mounted where the ArrayRecord library can read it.
if [[ -n "${mount_bucket}" ]]; then
  run gcloud compute tpus tpu-vm ssh "${name}" --worker=all "${scope[@]}" \
      --command="bash ~/mbt/deploy/tpu/mount_bucket.sh $(printf '%q' "${mount_bucket}") /mnt/gcs/$(printf '%q' "${mount_bucket}")"
fi

# 4. Training on all workers, detached so that ssh returns.
train_command="cd ~/mbt && MBT_DISTRIBUTED=1 nohup .venv/bin/python -m trainer.train"
train_command+=" --config=$(printf '%q' "${config}") --workdir=$(printf '%q' "${workdir}")"
for flag in "${train_flags[@]+"${train_flags[@]}"}"; do
  train_command+=" $(printf '%q' "${flag}")"
done
train_command+=" > ~/mbt_train.log 2>&1 < /dev/null &"
run gcloud compute tpus tpu-vm ssh "${name}" --worker=all "${scope[@]}" --command="${train_command}"

if [[ ${dry_run} -eq 0 ]]; then
  echo "launch_tpu: training started on all workers of ${name}; logs in ~/mbt_train.log on each worker"
fi
