r"""Trains MBT: one script, read top to bottom (big_vision style).

    python -m trainer.train --config trainer/configs/tiny.py --workdir /tmp/mbt_tiny/run
    python -m trainer.train --config trainer/configs/audioset_mini.py:audio \
        --workdir gs://BUCKET/runs/x --config.model.fusion_layer=4 --config.batch_size=128

Sections:
  1. Setup: flags, multi-host start, the device mesh.
  2. Data: this host's batches -> global arrays sharded over 'data'.
  3. Model and optimiser: SGD momentum, linear warmup + cosine, clip 1.
  4. The train step: RGB finishing, (modality) mixup, per-modality loss.
  5. Checkpoints: orbax; parameters, optimiser state, step, rng and the grain
     iterator state, so a killed run resumes exactly where it stopped.
  6. The loop: progress line on stdout, TensorBoard scalars, checkpoints,
     optional evaluation.

Data parallelism: one mesh axis 'data' over every device of every host; the
state is replicated, batches are split along their first axis, and XLA
inserts the gradient all-reduce. Each host reads only its rows of every
global batch, and those rows do not depend on the number of hosts (see
trainer/data/grain_input.py), so a run gives the same losses and parameters
on one host or many (up to the order of the gradient reduction).

Several hosts: every process runs this same command. On a TPU pod slice
(trainer/launch_tpu.sh) set MBT_DISTRIBUTED=1 or --config.distributed=True and
JAX finds the other workers itself; elsewhere name them with
--coordinator_address=HOST:PORT --num_processes=N --process_id=I. CPU
processes (tests) also need JAX_CPU_COLLECTIVES_IMPLEMENTATION=gloo:

    JAX_CPU_COLLECTIVES_IMPLEMENTATION=gloo python -m trainer.train \
        --config trainer/configs/tiny.py --workdir runs/tiny \
        --coordinator_address=127.0.0.1:7654 --num_processes=2 --process_id=0   # and =1
"""

from __future__ import annotations

import datetime
import os
import sys
import time
from typing import Any

from absl import app, flags, logging
import grain
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags
import numpy as np
import optax
import orbax.checkpoint as ocp
import tensorflow as tf

from shared import files
from trainer import entry_point, evaluate, losses
from trainer.data import device_ops, input_pipeline, mixup as mixup_lib
from trainer.models import build_model
from trainer.tensorboard_log import TensorBoardLog


# =============================================================================
# 1. Setup.
# =============================================================================
_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, e.g. trainer/configs/tiny.py[:variant].",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, TensorBoard logs and config.json (local or gs://).")
_COORDINATOR_ADDRESS = flags.DEFINE_string(
    "coordinator_address", None, "HOST:PORT of process 0 of a multi-process run (not needed on TPU pod slices).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes of a multi-process run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index in a multi-process run.")


def start_distributed(config: ml_collections.ConfigDict, coordinator_address: str | None = None,
                      num_processes: int | None = None, process_id: int | None = None) -> None:
  """Joins the other processes of a multi-host run; a no-op on one host or when already joined.

  With a coordinator address the processes are named explicitly; with
  config.distributed or MBT_DISTRIBUTED=1 alone, JAX detects them (TPU pods,
  SLURM, ...).
  """
  if jax.distributed.is_initialized():
    return
  if coordinator_address is not None or config.get("distributed") or os.environ.get("MBT_DISTRIBUTED") == "1":
    jax.distributed.initialize(coordinator_address, num_processes, process_id)


def make_mesh() -> Mesh:
  return Mesh(np.asarray(jax.devices()), ("data",))


def is_chief() -> bool:
  return jax.process_index() == 0


def say(message: str) -> None:
  """A line on stdout, from the first host only."""
  if is_chief():
    print(message, flush=True)


# =============================================================================
# 2. Data.
# =============================================================================
def local_batch_size(global_batch_size: int) -> int:
  """This host's share of a global batch; it must split evenly over devices."""
  if global_batch_size % jax.device_count():
    raise ValueError(f"batch size {global_batch_size} does not split over {jax.device_count()} devices")
  return global_batch_size // jax.process_count()


def to_global(local_batch: dict, sharding: NamedSharding) -> dict:
  """Host-local numpy batch -> global jax arrays split along the batch axis."""
  device_batch = {key: value for key, value in local_batch.items() if key != "index"}
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), device_batch)


def schedule_lengths(config: ml_collections.ConfigDict, num_records: int) -> tuple[int, int]:
  """(total steps, warmup steps) from epochs of the training build unless set."""
  steps_per_epoch = max(1, num_records // config.batch_size)
  total = config.total_steps if config.total_steps is not None else int(config.num_epochs * steps_per_epoch)
  warmup = config.warmup_steps if config.get("warmup_steps") is not None else int(
      config.warmup_epochs * steps_per_epoch)
  return total, min(warmup, total)


# =============================================================================
# 3. Model and optimiser.
# =============================================================================
def make_optimizer(config: ml_collections.ConfigDict, total_steps: int, warmup_steps: int):
  """(optax transformation, learning-rate schedule)."""
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=config.learning_rate, warmup_steps=warmup_steps,
      decay_steps=max(total_steps, warmup_steps + 1), end_value=0.0)
  optimizer = optax.chain(optax.clip_by_global_norm(config.grad_clip_norm),
                          optax.sgd(schedule, momentum=config.momentum))
  return optimizer, schedule


def model_inputs(preprocessor, batch_size: int = 1) -> dict[str, jnp.ndarray]:
  """Zero model inputs (finished, float32) of the shapes the pipeline yields."""
  spec = preprocessor.element_spec(train=True)["inputs"]
  return {m: jnp.zeros((batch_size,) + shape, jnp.float32) for m, (shape, _) in spec.items()}


def initial_state(config: ml_collections.ConfigDict, model, optimizer, inputs: dict,
                  replicated: NamedSharding) -> dict[str, Any]:
  """{'step', 'params', 'opt_state', 'rng'}, replicated on every device."""
  params_rng, dropout_rng, train_rng = jax.random.split(jax.random.PRNGKey(config.seed), 3)

  def init():
    params = model.init({"params": params_rng, "dropout": dropout_rng}, inputs, train=False)["params"]
    return {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": optimizer.init(params),
            "rng": train_rng}

  # Initialisation runs once: on CPU, compiling it without XLA's backend
  # optimisations takes about a third of the time.
  fast_compile = ({"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
                  if jax.default_backend() == "cpu" else None)
  state = jax.jit(init, out_shardings=replicated, compiler_options=fast_compile)()
  if config.get("init_from_vit"):
    from trainer.models.vit_init import init_from_vit

    params, report = init_from_vit(jax.device_get(state["params"]), files.absolute(config.init_from_vit),
                                   config.model, config.get("vit_init"))
    say(str(report).splitlines()[0])
    state["params"] = jax.device_put(params, replicated)
    state["opt_state"] = jax.jit(optimizer.init, out_shardings=replicated)(state["params"])
  return state


# =============================================================================
# 4. The train step.
# =============================================================================
def make_train_step(config: ml_collections.ConfigDict, model, optimizer, schedule, label_kind: str,
                    state_sharding, replicated: NamedSharding):
  """The jitted step: (state, global batch) -> (state, metrics)."""

  def train_step(state, batch):
    mixup_rng, dropout_rng = jax.random.split(jax.random.fold_in(state["rng"], state["step"]))
    inputs = device_ops.finish_inputs(batch["inputs"], batch.get("rgb_jitter"))
    targets = batch["label"]
    if config.mixup.alpha > 0:
      inputs, targets_per_modality, _, _ = mixup_lib.mixup(
          mixup_rng, inputs, targets, alpha=config.mixup.alpha, per_modality=config.mixup.per_modality)
    else:
      targets_per_modality = {m: targets for m in inputs}

    def loss_fn(params):
      _, intermediates = model.apply({"params": params}, inputs, train=True, rngs={"dropout": dropout_rng})
      per_modality = losses.modality_losses(label_kind, intermediates["logits_per_modality"], targets_per_modality,
                                            batch["mask"], config.label_smoothing)
      return jnp.mean(jnp.stack(list(per_modality.values()))), per_modality

    (loss, per_modality), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    metrics = {"loss": loss, "learning_rate": schedule(state["step"]), "grad_norm": optax.tree.norm(grads),
               "param_norm": optax.tree.norm(params), **{f"loss_{m}": v for m, v in per_modality.items()}}
    return {"step": state["step"] + 1, "params": params, "opt_state": opt_state, "rng": state["rng"]}, metrics

  return jax.jit(train_step, out_shardings=(state_sharding, replicated), donate_argnums=(0,))


# =============================================================================
# 5. Checkpoints.
# =============================================================================
def checkpoint_manager(workdir: str, config: ml_collections.ConfigDict) -> ocp.CheckpointManager:
  """Items per step: 'state' (the train state) and 'data' (the input position)."""
  # The loop decides when to save (every checkpoint_every_steps and at the end).
  options = ocp.CheckpointManagerOptions(max_to_keep=config.keep_checkpoints, create=True)
  return ocp.CheckpointManager(files.join(workdir, "checkpoints"), options=options,
                               item_names=("state", "data"))


def data_checkpoint_args(train_input: input_pipeline.TrainInput, step: int, restore: bool):
  """grain: its iterator state, one file per host. tf.data: the step (the stream is replayed)."""
  if train_input.grain_iterator is not None:
    if restore:
      return grain.checkpoint.CheckpointRestore(train_input.grain_iterator)
    return grain.checkpoint.CheckpointSave(train_input.grain_iterator)
  return ocp.args.JsonRestore() if restore else ocp.args.JsonSave({"pipeline": "tf.data", "consumed_batches": step})


def save(manager: ocp.CheckpointManager, step: int, state: dict, train_input) -> None:
  """Saves `step` (asynchronously for the arrays; the input position is taken now)."""
  manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                             data=data_checkpoint_args(train_input, step, restore=False)),
               force=True)


def restore(manager: ocp.CheckpointManager, step: int, state: dict, train_input) -> dict:
  """The saved state of `step` (shardings as `state`); positions the input too."""
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract), data=data_checkpoint_args(train_input, step, restore=True)))
  return restored.state


# =============================================================================
# 6. The loop.
# =============================================================================
class Progress:
  """Rates and ETA between two log points, and the share of time spent waiting for input."""

  def __init__(self, total_steps: int, batch_size: int, start_step: int):
    self.total_steps, self.batch_size = total_steps, batch_size
    self._last_step, self._last_time, self.input_wait = start_step, time.perf_counter(), 0.0

  def line(self, step: int, metrics: dict) -> tuple[str, dict]:
    now = time.perf_counter()
    elapsed = max(now - self._last_time, 1e-9)
    steps_per_s = (step - self._last_step) / elapsed
    wait_fraction = self.input_wait / elapsed
    eta = datetime.timedelta(seconds=int((self.total_steps - step) / max(steps_per_s, 1e-9)))
    self._last_step, self._last_time, self.input_wait = step, now, 0.0
    rates = {"steps_per_s": steps_per_s, "examples_per_s": steps_per_s * self.batch_size,
             "input_wait_fraction": wait_fraction}
    text = (f"step {step}/{self.total_steps} | {steps_per_s:.2f} steps/s | {rates['examples_per_s']:.1f} ex/s | "
            f"loss {metrics['loss']:.4f} | lr {metrics['learning_rate']:.4g} | "
            f"input wait {wait_fraction:.0%} | ETA {eta}")
    return text, rates


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains (resuming from the latest checkpoint in workdir) and returns the final state.

  Returns:
    {'state': final train state, 'history': [(step, metrics), ...] at log
    points, 'eval': [(step, results), ...]}.
  """
  workdir = files.absolute(workdir)  # orbax refuses relative paths
  start_distributed(config)
  mesh = make_mesh()
  replicated = NamedSharding(mesh, PartitionSpec())
  data_sharding = NamedSharding(mesh, PartitionSpec("data"))
  try:
    tf.config.set_visible_devices([], "GPU")  # TF only reads data and writes summaries: GPUs stay JAX's
  except RuntimeError:
    pass  # TensorFlow was initialised earlier in this process
  if is_chief():
    files.makedirs(workdir)
    files.write_bytes(files.join(workdir, "config.json"), config.to_json(indent=1).encode())

  manager = checkpoint_manager(workdir, config)
  resume_step = manager.latest_step()
  train_input = input_pipeline.TrainInput(
      config, local_batch_size=local_batch_size(config.batch_size), process_index=jax.process_index(),
      process_count=jax.process_count(), start_step=resume_step or 0)
  label_kind = input_pipeline.label_kind(config)
  total_steps, warmup_steps = schedule_lengths(config, train_input.num_records)
  model = build_model(config.model)
  optimizer, schedule = make_optimizer(config, total_steps, warmup_steps)
  state = initial_state(config, model, optimizer, model_inputs(train_input.preprocessor), replicated)
  state_sharding = jax.tree.map(lambda _: replicated, state)
  if resume_step is not None:
    state = restore(manager, resume_step, state, train_input)
    say(f"resumed from step {resume_step} in {workdir}")
  train_step = make_train_step(config, model, optimizer, schedule, label_kind, state_sharding, replicated)
  start_step = int(jax.device_get(state["step"]))
  say(f"training {config.dataset} ({', '.join(config.model.modalities)}; fusion {config.model.fusion_type}, "
      f"L_f={config.model.fusion_layer}, B={config.model.num_bottleneck_tokens}) on {jax.device_count()} "
      f"device(s), {jax.process_count()} host(s): {train_input.num_records} clips, steps {start_step}->{total_steps}, "
      f"warmup {warmup_steps}, batch {config.batch_size}")

  tensorboard = TensorBoardLog(files.join(workdir, "tensorboard")) if is_chief() else None
  progress = Progress(total_steps, config.batch_size, start_step)
  history, evaluations, test_step = [], [], None
  iterator = iter(train_input)
  try:
    for step in range(start_step, total_steps):
      waited = time.perf_counter()
      local_batch = next(iterator)
      progress.input_wait += time.perf_counter() - waited
      state, metrics = train_step(state, to_global(local_batch, data_sharding))
      done = step + 1
      stopping = config.stop_after_steps is not None and done >= config.stop_after_steps

      if done % config.log_every_steps == 0 or done == total_steps or stopping:
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        text, rates = progress.line(done, metrics)
        say(text)
        history.append((done, {**metrics, **rates}))
        if tensorboard is not None:
          tensorboard.scalars(done, {f"train/{name}": value for name, value in {**metrics, **rates}.items()})

      if done == total_steps or done % config.checkpoint_every_steps == 0:
        save(manager, done, state, train_input)

      if config.eval_every_steps and (done % config.eval_every_steps == 0 or done == total_steps):
        test_step = test_step or evaluate.make_test_step(model, mesh)
        results = evaluate.test_pass(config, model, state["params"], files.absolute(config.data.eval_dir), mesh,
                                     test_step)
        evaluations.append((done, results))
        say(f"eval at step {done}: {evaluate.summary_line(label_kind, results)}")
        if tensorboard is not None:
          tensorboard.scalars(done, {f"eval/{name}": value for name, value in evaluate.scalar_metrics(results).items()})

      if stopping:
        say(f"stopping after step {done} (config.stop_after_steps); resume with the same command")
        break
  finally:
    # Also after a failure: finish the checkpoint being written, stop the
    # input threads and flush the summaries while the interpreter is whole.
    manager.wait_until_finished()
    manager.close()
    train_input.close()
    if tensorboard is not None:
      tensorboard.close()
  return {"state": state, "history": history, "eval": evaluations}


def main(argv) -> None:
  del argv
  if _WORKDIR.value is None:
    raise app.UsageError("--workdir is required")
  logging.set_verbosity(logging.WARNING)
  start_distributed(_CONFIG.value, _COORDINATOR_ADDRESS.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  try:
    train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except input_pipeline.DATA_ERRORS as error:
    # The data is at fault, not the code: say what and where, without a traceback.
    print(f"trainer.train: data error ({type(error).__name__}): {error}", file=sys.stderr, flush=True)
    sys.exit(input_pipeline.DATA_ERROR_EXIT_CODE)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  entry_point.run(main)
