"""Importing Scenic MBT checkpoints: Scenic's names and shapes in, Scenic's forward pass out.

The checkpoints here are written the way Scenic saves its train state (a flax
msgpack with the parameters under optimizer/target or params), with random
values under the names and shapes Scenic's model (scenic/projects/mbt/model.py)
gives them. `scenic_logits` is an independent numpy transcription of Scenic's
forward pass over those names: 3-channel spectrogram, its own token order and
modality order ('spectrogram', 'rgb' as in its AudioSet config), n + 1
bottleneck tokens with classifier 'token', one encoder_norm over everything,
CLS tokens found by counting, or 'gap' pooling. The imported model, restored
the way trainer.evaluate restores checkpoints, must compute the same logits.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import textwrap

import flax
import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from trainer import evaluate, import_scenic, metrics as metrics_lib
from trainer.configs import common
from trainer.data import device_ops, input_pipeline, synthetic
from trainer.models import build_model

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HIDDEN, HEADS, MLP, LAYERS, CLASSES = 32, 2, 64, 3, 5


# ---------------------------------------------------------------------------
# A Scenic MBT, as Scenic names, shapes and computes it.
# ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ScenicModel:
  """The settings of a Scenic MBT config (config.model.*) the tests use."""

  modality_fusion: tuple[str, ...] = ("spectrogram", "rgb")
  classifier: str = "token"
  use_bottleneck: bool = True
  n_bottlenecks: int = 4
  share_encoder: bool = False
  fusion_layer: int = 1
  tubelet_frames: int = 0  # 0: 2D patches ('temporal_sampling'); t: '3d_conv' with patches.size [16, 16, t]
  num_frames: int = 2
  spectrogram_rows: int = 32

  @property
  def rgb_tokens(self) -> int:
    return (self.num_frames // max(self.tubelet_frames, 1)) * 2 * 2  # 32 x 32 frames

  @property
  def spectrogram_tokens(self) -> int:
    return (self.spectrogram_rows // 16) * 8


def scenic_parameters(model: ScenicModel, seed: int = 0) -> dict:
  """Random parameters under Scenic's names, with Scenic's shapes."""
  rng = np.random.default_rng(seed)

  def normal(*shape, scale=None):
    scale = 1 / np.sqrt(np.prod(shape[:-1]) if len(shape) > 1 else 10) if scale is None else scale
    return (scale * rng.normal(size=shape)).astype(np.float32)

  def block():
    head_dim = HIDDEN // HEADS
    attention = {name: {"kernel": normal(HIDDEN, HEADS, head_dim, scale=HIDDEN ** -0.5),
                        "bias": normal(HEADS, head_dim, scale=0.1)} for name in ("query", "key", "value")}
    attention["out"] = {"kernel": normal(HEADS, head_dim, HIDDEN, scale=HIDDEN ** -0.5), "bias": normal(HIDDEN)}
    norm = lambda: {"scale": 1 + normal(HIDDEN, scale=0.1), "bias": normal(HIDDEN, scale=0.1)}  # noqa: E731
    return {"LayerNorm_0": norm(), "MultiHeadDotProductAttention_0": attention, "LayerNorm_1": norm(),
            "MlpBlock_0": {"Dense_0": {"kernel": normal(HIDDEN, MLP), "bias": normal(MLP, scale=0.1)},
                           "Dense_1": {"kernel": normal(MLP, HIDDEN), "bias": normal(HIDDEN, scale=0.1)}}}

  token = model.classifier == "token"
  params, transformer = {}, {}
  if "rgb" in model.modality_fusion:
    t = model.tubelet_frames
    params["embedding"] = {"kernel": normal(*((t,) if t else ()), 16, 16, 3, HIDDEN, scale=0.02),
                           "bias": normal(HIDDEN, scale=0.1)}
    transformer["posembed_input"] = {"pos_embedding": normal(1, token + model.rgb_tokens, HIDDEN, scale=0.3)}
  if "spectrogram" in model.modality_fusion:
    params["embedding_spectrogram"] = {"kernel": normal(16, 16, 3, HIDDEN, scale=0.02),
                                       "bias": normal(HIDDEN, scale=0.1)}
    transformer["posembed_input_spectrogram"] = {
        "pos_embedding": normal(1, token + model.spectrogram_tokens, HIDDEN, scale=0.3)}
  if token:
    for modality in model.modality_fusion:
      name = "cls" if modality == "rgb" or len(model.modality_fusion) == 1 else "cls" + modality
      params[name] = normal(1, 1, HIDDEN, scale=0.5)
  if model.use_bottleneck:
    params["bottleneck"] = normal(1, model.n_bottlenecks + token, HIDDEN, scale=0.5)
  for layer in range(LAYERS):
    for modality in model.modality_fusion:
      if modality == "rgb" or model.share_encoder:
        transformer.setdefault(f"encoderblock_{layer}", block())
      else:
        transformer[f"encoderblock_{layer}_{modality}"] = block()
  transformer["encoder_norm"] = {"scale": 1 + normal(HIDDEN, scale=0.1), "bias": normal(HIDDEN, scale=0.1)}
  params["Transformer"] = transformer
  params["output_projection"] = {"kernel": normal(HIDDEN, CLASSES), "bias": normal(CLASSES, scale=0.1)}
  return params


def write_scenic_checkpoint(directory, params: dict, *, step: int = 1234, root: str = "optimizer/target") -> str:
  """Scenic's train state as flax.training.checkpoints saves it: checkpoint_<step>, msgpack."""
  momentum = jax.tree.map(np.zeros_like, params)
  if root == "optimizer/target":  # Scenic with flax.optim
    state = {"global_step": step, "optimizer": {"target": params, "state": {"step": step, "param_states": momentum}},
             "model_state": {}, "rng": np.array([0, 42], np.uint32), "accum_train_time": 12.5}
  else:  # Scenic with optax
    state = {"global_step": step, "params": params, "opt_state": {"0": {"trace": momentum}}, "model_state": {},
             "rng": np.array([0, 42], np.uint32), "metadata": {"chrono": {"accum_train_time": 12.5}}}
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, f"checkpoint_{step}")
  with open(path, "wb") as f:
    f.write(flax.serialization.msgpack_serialize(state))
  return path


def _layer_norm(x, p):
  mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + 1e-6) * p["scale"] + p["bias"]


def _encoder_block(p, x):
  """Scenic's EncoderBlock at evaluation: pre-LN attention and MLP, each with a residual."""
  y = _layer_norm(x, p["LayerNorm_0"])
  a = p["MultiHeadDotProductAttention_0"]
  q, k, v = (np.einsum("bnd,dhc->bnhc", y, a[n]["kernel"]) + a[n]["bias"] for n in ("query", "key", "value"))
  logits = np.einsum("bqhc,bkhc->bhqk", q / np.sqrt(q.shape[-1]), k)
  weights = np.exp(logits - logits.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  x = x + np.einsum("bqhc,hcd->bqd", np.einsum("bhqk,bkhc->bqhc", weights, v), a["out"]["kernel"]) + a["out"]["bias"]
  y = _layer_norm(x, p["LayerNorm_1"])
  mlp = p["MlpBlock_0"]
  hidden = y @ mlp["Dense_0"]["kernel"] + mlp["Dense_0"]["bias"]
  hidden = 0.5 * hidden * (1 + np.tanh(np.sqrt(2 / np.pi) * (hidden + 0.044715 * hidden ** 3)))  # flax's gelu
  return x + hidden @ mlp["Dense_1"]["kernel"] + mlp["Dense_1"]["bias"]


def _conv_patches(x, kernel, bias):
  """VALID conv with stride = kernel size over the leading spatial axes of x [B, *S, C]."""
  window = kernel.shape[:-2]
  batch, channels = x.shape[0], x.shape[-1]
  grid = [size // w for size, w in zip(x.shape[1:-1], window)]
  shape = [batch] + [v for g, w in zip(grid, window) for v in (g, w)] + [channels]
  patches = x.reshape(shape)
  dims = len(window)
  order = [0] + [1 + 2 * i for i in range(dims)] + [2 + 2 * i for i in range(dims)] + [1 + 2 * dims]
  patches = patches.transpose(order).reshape(batch, int(np.prod(grid)), -1)
  return patches @ kernel.reshape(-1, kernel.shape[-1]) + bias


def scenic_logits(params: dict, model: ScenicModel, rgb: np.ndarray | None, spectrogram: np.ndarray | None):
  """Scenic's MBT forward pass at evaluation (train=False), in float64 numpy."""
  params = jax.tree.map(lambda v: np.asarray(v, np.float64), params)
  x, patch_tokens = {}, {}
  for modality in model.modality_fusion:
    if modality == "spectrogram":
      # Scenic's input pipeline tiles the log-mel to 3 channels; its conv reads them all.
      image = np.repeat(spectrogram[..., None], 3, axis=-1)
      tokens = _conv_patches(image, params["embedding_spectrogram"]["kernel"], params["embedding_spectrogram"]["bias"])
    elif model.tubelet_frames:
      tokens = _conv_patches(rgb, params["embedding"]["kernel"], params["embedding"]["bias"])
    else:  # temporal_sampling with every frame: frames stacked vertically, one 2D conv
      n, t, h, w, c = rgb.shape
      tokens = _conv_patches(rgb.reshape(n, t * h, w, c), params["embedding"]["kernel"], params["embedding"]["bias"])
    patch_tokens[modality] = tokens.shape[1]
    if model.classifier == "token":
      name = "cls" if modality == "rgb" or len(model.modality_fusion) == 1 else "cls" + modality
      tokens = np.concatenate([np.broadcast_to(params[name], (tokens.shape[0], 1, HIDDEN)), tokens], axis=1)
    x[modality] = tokens
  batch = next(iter(x.values())).shape[0]
  bottleneck = np.broadcast_to(params["bottleneck"], (batch,) + params["bottleneck"].shape[1:]) \
      if model.use_bottleneck else None
  transformer = params["Transformer"]
  for modality in model.modality_fusion:
    name = "posembed_input" if modality == "rgb" else "posembed_input_" + modality
    x[modality] = x[modality] + transformer[name]["pos_embedding"]
  combined = None
  for layer in range(LAYERS):
    blocks = {m: transformer[f"encoderblock_{layer}"] if m == "rgb" or model.share_encoder
              else transformer[f"encoderblock_{layer}_{m}"] for m in model.modality_fusion}
    if layer < model.fusion_layer or len(model.modality_fusion) == 1:
      x = {m: _encoder_block(blocks[m], x[m]) for m in model.modality_fusion}
    elif model.use_bottleneck:
      updates = []
      for m in model.modality_fusion:
        size = x[m].shape[1]
        out = _encoder_block(blocks[m], np.concatenate([x[m], bottleneck], axis=1))
        x[m] = out[:, :size]
        updates.append(out[:, size:])
      bottleneck = np.mean(np.stack(updates, axis=-1), axis=-1)
    elif not model.share_encoder:  # cross-attention: [other modalities..., own tokens], keep its own
      new = {}
      for m in model.modality_fusion:
        context = [x[o] for o in ("rgb", "spectrogram") if o != m and o in model.modality_fusion] + [x[m]]
        new[m] = _encoder_block(blocks[m], np.concatenate(context, axis=1))[:, -x[m].shape[1]:]
      x = new
    else:  # shared encoder: one joint sequence from the first fusion layer on
      if combined is None:
        combined = np.concatenate([x[m] for m in model.modality_fusion], axis=1)
      combined = _encoder_block(blocks["rgb"], combined)
  out = combined if combined is not None else np.concatenate([x[m] for m in model.modality_fusion], axis=1)
  encoded = _layer_norm(out, transformer["encoder_norm"])
  projection = params["output_projection"]
  if model.classifier == "token":
    pooled, counter = [], 0
    for m in model.modality_fusion:
      pooled.append(encoded[:, counter] @ projection["kernel"] + projection["bias"])
      counter += patch_tokens[m] + 1
    return sum(pooled) / len(pooled)
  return encoded.mean(axis=1) @ projection["kernel"] + projection["bias"]


# ---------------------------------------------------------------------------
# The same model as this project's config.
# ---------------------------------------------------------------------------
def our_config(model: ScenicModel, **data_overrides):
  modalities = tuple(m for m in ("rgb", "spectrogram") if m in model.modality_fusion)
  variant = {("rgb", "spectrogram"): "av", ("rgb",): "video", ("spectrogram",): "audio"}[modalities]
  if len(modalities) == 1:
    fusion_type = "late"
  elif model.use_bottleneck:
    fusion_type = "bottleneck"
  else:
    fusion_type = "self_attention" if model.share_encoder else "cross_attention"
  config = common.paper_config(
      "audioset", variant, num_classes=CLASSES, num_frames=model.num_frames,
      window_seconds=model.spectrogram_rows / 100, model_size="tiny", image_size=32, num_layers=LAYERS,
      fusion_type=fusion_type, fusion_layer=model.fusion_layer, classifier=model.classifier,
      share_encoder=model.share_encoder, rgb_tubelet_frames=max(model.tubelet_frames, 1),
      num_bottleneck_tokens=model.n_bottlenecks + (model.classifier == "token"), stochastic_depth_rate=0.0)
  config.data.min_resize = 40
  config.data.num_test_crops = 2
  config.eval_batch_size = 4
  config.data.read_threads = 2
  config.data.update(data_overrides)
  return config


def random_inputs(model: ScenicModel, batch: int = 2, seed: int = 1) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(seed)
  inputs = {}
  if "rgb" in model.modality_fusion:
    inputs["rgb"] = rng.uniform(-1, 1, size=(batch, model.num_frames, 32, 32, 3)).astype(np.float32)
  if "spectrogram" in model.modality_fusion:
    inputs["spectrogram"] = rng.normal(size=(batch, model.spectrogram_rows, 128)).astype(np.float32)
  return inputs


def restored(workdir: str, step: int):
  """The imported parameters, restored as trainer.evaluate restores them."""
  mesh = Mesh(np.asarray(jax.devices()), ("data",))
  return evaluate.restore_params(workdir, step, NamedSharding(mesh, PartitionSpec()))


CASES = {
    # The zoo's MBT-B/16x2 layout: tubelets, 'gap', 4 bottleneck tokens, blocks per modality.
    "bottleneck_gap_tubelets": ScenicModel(classifier="gap", tubelet_frames=2, num_frames=4),
    # 'token': Scenic's bottleneck holds n_bottlenecks + 1 = 5 tokens, all fused.
    "bottleneck_token_early": ScenicModel(fusion_layer=0),
    "self_attention_shared_encoder": ScenicModel(use_bottleneck=False, share_encoder=True),
    "cross_attention": ScenicModel(use_bottleneck=False),
    # Late fusion: Scenic still creates the bottleneck parameter, unused.
    "late": ScenicModel(fusion_layer=LAYERS),
    "spectrogram_only_gap": ScenicModel(modality_fusion=("spectrogram",), classifier="gap", use_bottleneck=False),
    "rgb_only_tubelets": ScenicModel(modality_fusion=("rgb",), use_bottleneck=False, tubelet_frames=2, num_frames=4),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_imported_model_computes_scenics_forward_pass(case, tmp_path):
  model = CASES[case]
  params = scenic_parameters(model)
  root = "params" if case.startswith("cross") else "optimizer/target"
  write_scenic_checkpoint(tmp_path / "scenic", params, root=root)
  config = our_config(model)
  report = import_scenic.import_checkpoint(str(tmp_path / "scenic"), config, str(tmp_path / "imported"))
  assert report.step == 1234 and report.parameter_root == root

  ours = restored(str(tmp_path / "imported"), 1234)
  ours_flat = flax.traverse_util.flatten_dict(ours, sep="/")
  assert len(report.mapped) == len(ours_flat)  # one report line per parameter
  inputs = random_inputs(model)
  logits, _ = build_model(config.model).apply({"params": ours}, inputs, train=False)
  expected = scenic_logits(params, model, inputs.get("rgb"), inputs.get("spectrogram"))
  np.testing.assert_allclose(np.asarray(logits), expected, rtol=1e-5, atol=5e-6)  # measured: at most 7e-7
  # The weights do matter: another draw gives other logits.
  assert np.abs(expected - scenic_logits(scenic_parameters(model, seed=5), model, inputs.get("rgb"),
                                         inputs.get("spectrogram"))).max() > 1e-2


def test_report_names_every_leaf_and_what_was_done(tmp_path):
  model = CASES["bottleneck_token_early"]
  write_scenic_checkpoint(tmp_path / "scenic", scenic_parameters(model))
  report = import_scenic.import_checkpoint(str(tmp_path / "scenic"), our_config(model), str(tmp_path / "out"))
  text = open(tmp_path / "out" / "import_report.txt").read()
  assert text.strip() == str(report)
  by_ours = {m.ours: m for m in report.mapped}
  assert by_ours["encoder/fusion_tokens"].scenic == "bottleneck"
  assert by_ours["encoder/fusion_tokens"].ours_shape == (1, 5, HIDDEN)
  spectrogram_kernel = by_ours["tokenizer_spectrogram/projection/kernel"]
  assert (spectrogram_kernel.scenic_shape, spectrogram_kernel.ours_shape) == ((16, 16, 3, HIDDEN), (16, 16, 1, HIDDEN))
  assert by_ours["cls_spectrogram/cls"].scenic == "clsspectrogram"
  assert by_ours["encoder/norm_rgb/scale"].scenic == by_ours["encoder/norm_spectrogram/scale"].scenic == \
      "Transformer/encoder_norm/scale"
  assert by_ours["encoder/layer_2/spectrogram/mlp/output/kernel"].scenic == \
      "Transformer/encoderblock_2_spectrogram/MlpBlock_0/Dense_1/kernel"
  assert by_ours["encoder/layer_0/rgb/attention/out/bias"].scenic == \
      "Transformer/encoderblock_0/MultiHeadDotProductAttention_0/out/bias"
  assert any(entry.startswith("optimizer/state") for entry in report.left_out)
  saved = json.load(open(tmp_path / "out" / "import_report.json"))
  assert len(saved["mapped"]) == len(report.mapped)


def test_missing_and_unknown_leaves_are_named(tmp_path):
  model = CASES["bottleneck_token_early"]
  params = scenic_parameters(model)
  del params["Transformer"]["encoderblock_1_spectrogram"]["LayerNorm_1"]["scale"]
  params["Transformer"]["encoderblock_1"]["extra_gate"] = {"kernel": np.zeros((HIDDEN, 1), np.float32)}
  write_scenic_checkpoint(tmp_path / "scenic", params)
  with pytest.raises(import_scenic.ScenicImportError) as error:
    import_scenic.import_checkpoint(str(tmp_path / "scenic"), our_config(model), str(tmp_path / "out"))
  message = str(error.value)
  assert "Transformer/encoderblock_1_spectrogram/LayerNorm_1/scale (for encoder/layer_1/spectrogram/mlp_norm/scale)" \
      in message
  assert "Transformer/encoderblock_1/extra_gate/kernel [32, 1]" in message
  assert not os.path.exists(tmp_path / "out" / "checkpoints")


def test_n_plus_one_bottleneck_tokens_need_their_count_in_the_config(tmp_path):
  model = CASES["bottleneck_token_early"]
  write_scenic_checkpoint(tmp_path / "scenic", scenic_parameters(model))
  config = our_config(model)
  config.model.num_bottleneck_tokens = 4  # Scenic's n_bottlenecks, not its parameter's 5 tokens
  with pytest.raises(import_scenic.ScenicImportError, match=r"n_bottlenecks \+ 1.*num_bottleneck_tokens=5"):
    import_scenic.import_checkpoint(str(tmp_path / "scenic"), config, str(tmp_path / "out"))


@pytest.mark.parametrize("change, message", [
    (dict(share_encoder=False, fusion_type="cross_attention"), "share_encoder=True"),
    (dict(share_encoder=False), "share_encoder=True"),
    (dict(classifier="gap"), "classifier=token"),
    (dict(num_layers=2, fusion_layer=1), "num_layers=3"),
])
def test_layouts_that_do_not_fit_are_refused_with_the_override_that_fits(change, message, tmp_path):
  model = CASES["self_attention_shared_encoder"]
  write_scenic_checkpoint(tmp_path / "scenic", scenic_parameters(model))
  config = our_config(model)
  config.model.update(change)
  with pytest.raises(import_scenic.ScenicImportError, match=message):
    import_scenic.import_checkpoint(str(tmp_path / "scenic"), config, str(tmp_path / "out"))


def test_pre_logits_and_foreign_files_are_refused(tmp_path):
  model = CASES["bottleneck_token_early"]
  params = scenic_parameters(model)
  params["pre_logits"] = {"kernel": np.zeros((HIDDEN, 16), np.float32), "bias": np.zeros(16, np.float32)}
  write_scenic_checkpoint(tmp_path / "scenic", params)
  with pytest.raises(import_scenic.ScenicImportError, match="pre_logits"):
    import_scenic.import_checkpoint(str(tmp_path / "scenic"), our_config(model), str(tmp_path / "out"))
  (tmp_path / "notes.txt").write_text("not a checkpoint\n")
  with pytest.raises(import_scenic.ScenicImportError, match="not a flax msgpack"):
    import_scenic.import_checkpoint(str(tmp_path / "notes.txt"), our_config(model), str(tmp_path / "out"))


CONFIG_FILE = """
from trainer.configs import common


def get_config():
  config = common.paper_config(
      "audioset", "av", num_classes={classes}, num_frames=4, window_seconds=0.32, model_size="tiny",
      image_size=32, num_layers={layers}, fusion_type="bottleneck", fusion_layer=1, classifier="gap",
      rgb_tubelet_frames=2, num_bottleneck_tokens=4, stochastic_depth_rate=0.0)
  config.data.min_resize = 40
  config.data.num_test_crops = 2
  config.data.read_threads = 2
  config.eval_batch_size = 4
  return config
"""


def test_command_line_import_then_evaluation_gives_scenics_scores(tmp_path, monkeypatch):
  """The documented commands: import with the CLI, evaluate with trainer.evaluate on a build (relative paths)."""
  model = CASES["bottleneck_gap_tubelets"]
  params = scenic_parameters(model)
  checkpoint = write_scenic_checkpoint(tmp_path / "scenic", params, step=500)
  config_path = tmp_path / "mbt_tiny_gap.py"
  config_path.write_text(textwrap.dedent(CONFIG_FILE.format(classes=CLASSES, layers=LAYERS)))
  build = str(tmp_path / "build")
  synthetic.write_synthetic_build(build, dataset="audioset", split="eval", num_clips=6, num_classes=CLASSES,
                                  seconds=0.8, frame_size=(48, 40), num_shards=1)
  label_map = os.path.join(build, "label_map.json")
  with open(label_map, "w") as f:
    json.dump(json.load(open(os.path.join(build, "manifest.json")))["label_map"], f)

  out = tmp_path / "imported"
  command = [sys.executable, "-m", "trainer.import_scenic", checkpoint, f"--config={config_path}", "--out=imported",
             f"--label_map={label_map}"]
  done = subprocess.run(command, cwd=tmp_path, env={**os.environ, "PYTHONPATH": REPO}, capture_output=True,
                        text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  assert re.search(r"tokenizer_rgb/projection/kernel \[2, 16, 16, 3, 32\] +<- embedding/kernel \[2, 16, 16, 3, 32\]",
                   done.stdout), done.stdout
  assert os.path.exists(out / "label_map.json") and os.path.exists(out / "config.json")

  config = our_config(model)
  monkeypatch.chdir(tmp_path)
  results = evaluate.evaluate_checkpoints(config, "imported", split_dir=build)
  assert [r["step"] for r in results] == [500]

  # Scenic's forward pass over the very inputs the evaluation saw, crops averaged.
  _, _, batches = input_pipeline.test_batches(config, build, local_batch_size=config.eval_batch_size)
  scores, targets, masks = [], [], []
  for batch in batches:
    inputs = device_ops.finish_inputs({m: np.asarray(x) for m, x in batch["inputs"].items()})
    crops = inputs["rgb"].shape[1]
    logits = [scenic_logits(params, model, np.asarray(inputs["rgb"])[:, k], np.asarray(inputs["spectrogram"])[:, k])
              for k in range(crops)]
    scores.append(np.mean(logits, axis=0))
    targets.append(batch["label"])
    masks.append(batch["mask"])
  expected = metrics_lib.task_metrics("multi_hot", np.concatenate(scores), np.concatenate(targets),
                                      np.concatenate(masks))
  assert results[0]["num_examples"] == expected["num_examples"] == 6
  assert results[0]["mAP"] == pytest.approx(expected["mAP"], abs=1e-6)


def test_help_explains_the_mapping():
  done = subprocess.run([sys.executable, "-m", "trainer.import_scenic", "--help"], cwd=REPO,
                        env={**os.environ, "PYTHONPATH": REPO}, capture_output=True, text=True, timeout=120)
  # The module docstring and the flags (trainer.entry_point: exit status 0).
  assert done.returncode == 0 and "optimizer/target" in done.stdout and "--label_map" in done.stdout, (
      done.stdout + done.stderr)
