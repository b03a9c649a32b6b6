"""trainer/launch_tpu.sh against a fake gcloud that records its arguments."""

import os
import shlex
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "trainer", "launch_tpu.sh")
FAKE_GCLOUD = """#!/usr/bin/env bash
# Records each call (one line, shell-quoted arguments); `describe` fails unless the VM "exists".
printf '%q ' "$@" >> "$GCLOUD_LOG"
printf '\\n' >> "$GCLOUD_LOG"
if [[ "$*" == *" describe "* && ! -f "$GCLOUD_VM_EXISTS" ]]; then
  echo "ERROR: NOT_FOUND" >&2
  exit 1
fi
"""
ARGS = ["--name", "mbt-test", "--zone", "us-central2-b", "--project", "my-project",
        "--accelerator_type", "v4-32", "--config", "trainer/configs/audioset_as500k.py",
        "--workdir", "gs://bucket/runs/as500k", "--", "--config.data.train_dir=gs://bucket/as/train", "--config.seed=3"]


@pytest.fixture
def gcloud(tmp_path):
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  fake = bin_dir / "gcloud"
  fake.write_text(FAKE_GCLOUD)
  fake.chmod(0o755)
  log = tmp_path / "gcloud.log"
  env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "GCLOUD_LOG": str(log),
         "GCLOUD_VM_EXISTS": str(tmp_path / "vm_exists"), "TMPDIR": str(tmp_path)}

  def run(*args):
    result = subprocess.run(["bash", SCRIPT, *args], env=env, capture_output=True, text=True, cwd=REPO, timeout=120)
    calls = [shlex.split(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result, calls

  run.vm_exists = tmp_path / "vm_exists"
  return run


def test_help():
  result = subprocess.run(["bash", SCRIPT, "--help"], capture_output=True, text=True)
  assert result.returncode == 0
  for flag in ("--name", "--zone", "--accelerator_type", "--runtime_version", "--config", "--workdir",
               "--project", "--dry_run"):
    assert flag in result.stdout


def test_creates_installs_and_starts_on_all_workers(gcloud):
  result, calls = gcloud(*ARGS)
  assert result.returncode == 0, result.stderr
  verbs = [" ".join(call[:4]) for call in calls]
  assert verbs == ["compute tpus tpu-vm describe", "compute tpus tpu-vm create", "compute tpus tpu-vm scp",
                   "compute tpus tpu-vm ssh", "compute tpus tpu-vm ssh"]
  create = calls[1]
  assert "mbt-test" in create and "--accelerator-type=v4-32" in create and "--zone=us-central2-b" in create
  assert "--project=my-project" in create and "--version=tpu-ubuntu2204-base" in create
  for call in calls[2:]:
    assert "--worker=all" in call
  install = next(a for a in calls[3] if a.startswith("--command="))
  assert "deploy/tpu/setup_worker.sh" in install
  start = next(a for a in calls[4] if a.startswith("--command="))
  assert "MBT_DISTRIBUTED=1" in start and "-m trainer.train" in start
  assert "--config=trainer/configs/audioset_as500k.py" in start and "--workdir=gs://bucket/runs/as500k" in start
  assert "--config.data.train_dir=gs://bucket/as/train" in start and "--config.seed=3" in start
  assert not list(gcloud.vm_exists.parent.glob("mbt_src.*.tar.gz"))  # the tarball is cleaned up


def test_reuses_an_existing_vm(gcloud):
  gcloud.vm_exists.write_text("")
  result, calls = gcloud(*ARGS)
  assert result.returncode == 0, result.stderr
  assert not any(call[3] == "create" for call in calls)
  assert "reusing TPU VM mbt-test" in result.stdout


def test_dry_run_prints_and_runs_nothing(gcloud):
  result, calls = gcloud(*ARGS[:12], "--dry_run", *ARGS[12:])  # before `--`, which starts the trainer's flags
  assert result.returncode == 0, result.stderr
  assert calls == []
  lines = [line for line in result.stdout.splitlines() if line.startswith("gcloud ")]
  assert len(lines) == 5 and "tpu-vm create" in lines[1] and "--worker=all" in lines[-1]
  assert not list(gcloud.vm_exists.parent.glob("mbt_src.*.tar.gz"))


def test_missing_and_unknown_arguments(gcloud):
  result, calls = gcloud("--name", "x")
  assert result.returncode == 2 and "missing --zone --config --workdir" in result.stderr and calls == []
  result, _ = gcloud(*ARGS[:12], "--bogus")
  assert result.returncode == 2 and "unknown argument --bogus" in result.stderr


def test_mount_bucket_mounts_on_every_worker_before_training(gcloud):
  result, calls = gcloud(*ARGS[:12], "--mount_bucket", "gs://bucket/ignored/path", *ARGS[12:])
  assert result.returncode == 0, result.stderr
  commands = [next(a for a in call if a.startswith("--command=")) for call in calls if call[3] == "ssh"]
  assert len(commands) == 3 and "setup_worker.sh" in commands[0] and "-m trainer.train" in commands[2]
  assert "deploy/tpu/mount_bucket.sh bucket /mnt/gcs/bucket" in commands[1]
  assert "--worker=all" in calls[-2]


def test_workers_install_the_trainer_extra():
  """The package's own dependencies are the builds'; a TPU worker needs the trainer's too."""
  import tomllib

  with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
    extras = tomllib.load(f)["project"]["optional-dependencies"]
  with open(os.path.join(REPO, "deploy", "tpu", "setup_worker.sh")) as f:
    setup = f.read()
  assert "pip install --quiet -e '.[trainer]'" in setup and "jax" in " ".join(extras["trainer"])


def test_mount_script_refuses_wrong_usage():
  result = subprocess.run(["bash", os.path.join(REPO, "deploy", "tpu", "mount_bucket.sh")], capture_output=True,
                          text=True)
  assert result.returncode == 2 and "usage: mount_bucket.sh BUCKET MOUNT_POINT" in result.stderr
