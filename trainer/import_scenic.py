r"""Imports a Scenic MBT checkpoint as an orbax checkpoint of this trainer.

    python -m trainer.import_scenic CHECKPOINT --config trainer/configs/scenic_mbt_b16x2.py --out DIR
    python -m trainer.import_scenic mbtb32_as-500k_rgb-spec --config trainer/configs/scenic_mbt_b16x2.py \
        --out runs/scenic_as500k --label_map builds/audioset/eval/label_map.json
    python -m trainer.evaluate --config trainer/configs/scenic_mbt_b16x2.py --workdir runs/scenic_as500k \
        --split_dir builds/audioset/eval

CHECKPOINT is a Scenic checkpoint: the flax msgpack of Scenic's train state
(`checkpoint_<step>`, as flax.training.checkpoints writes it; local or gs://),
or a directory of them (the highest step is taken). The parameters are read
from `optimizer/target` (Scenic with flax.optim) or `params` (Scenic with
optax); the rest of the train state (optimiser moments, rng, ...) is left out
and listed. --config is this project's config of the same model: the
checkpoint must fit it leaf for leaf.

Writes DIR/checkpoints/STEP/ (orbax; item 'state' = {'step', 'params'}, what
trainer.evaluate and trainer.predict restore), DIR/config.json,
DIR/import_report.txt and .json (every leaf: our name and shape <- Scenic's
name and shape, and how), and with --label_map, DIR/label_map.json (the class
names trainer.predict prints).

How Scenic's parameters map onto ours (scenic/projects/mbt/model.py):

  embedding                             tokenizer_rgb/projection (2D patches
                                        [16,16,3,d] or 3D tubelets [t,16,16,3,d])
  embedding_spectrogram                 tokenizer_spectrogram/projection; the
                                        kernel summed over its 3 input channels:
                                        Scenic feeds the log-mel tiled to 3
                                        identical channels, ours is 1 channel
  cls, clsspectrogram                   cls_rgb/cls, cls_spectrogram/cls (one
                                        modality: Scenic's 'cls')
  bottleneck                            encoder/fusion_tokens, all of them: with
                                        classifier 'token' Scenic makes
                                        n_bottlenecks + 1 tokens (so that they
                                        can start from a positional table, CLS
                                        entry first) and every one takes part in
                                        fusion, so our B is that n + 1
  Transformer/posembed_input(_spectrogram)   posembed_rgb, posembed_spectrogram
  Transformer/encoderblock_L            encoder/layer_L/rgb, or /shared with
                                        share_encoder (Scenic's self-attention:
                                        one block per layer in every layer)
  Transformer/encoderblock_L_spectrogram    encoder/layer_L/spectrogram
    LayerNorm_0, MultiHeadDotProductAttention_0, LayerNorm_1, MlpBlock_0/Dense_0, MlpBlock_0/Dense_1
    -> attention_norm, attention, mlp_norm, mlp/hidden, mlp/output
  Transformer/encoder_norm              encoder/norm_rgb and encoder/norm_spectrogram
                                        (one LayerNorm over all tokens is the
                                        same LayerNorm per token)
  output_projection                     head/classifier

Not in the weights, so taken from the config: fusion_layer (L_f) and
Scenic's test_with_bottlenecks (assumed True, its default). Scenic models
with a pre_logits layer (representation_size) and Scenic's multi-head
(EPIC-KITCHENS) models are refused.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Callable, Mapping, Optional

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from shared import contract, files
from shared.layout import LABEL_MAP_NAME  # a build's label map, stored with the imported checkpoint
from trainer.models import build_model, input_shapes
from trainer.models import config as model_config

# Our block part -> the part of Scenic's EncoderBlock (flax linen names its
# unnamed submodules per type: LayerNorm_0, MultiHeadDotProductAttention_0,
# LayerNorm_1, MlpBlock_0 with Dense_0 and Dense_1).
SCENIC_BLOCK_PARTS = {
    "attention_norm": "LayerNorm_0",
    "attention": "MultiHeadDotProductAttention_0",
    "mlp_norm": "LayerNorm_1",
    "mlp/hidden": "MlpBlock_0/Dense_0",
    "mlp/output": "MlpBlock_0/Dense_1",
}
# Where Scenic's train state keeps the parameters.
PARAMETER_ROOTS = ("optimizer/target", "params")
REPORT_NAME = "import_report"

_SPECTROGRAM_BLOCK = re.compile(r"Transformer/encoderblock_(\d+)_spectrogram/")
_BLOCK = re.compile(r"Transformer/encoderblock_(\d+)/")


class ScenicImportError(ValueError):
  """The checkpoint cannot be imported into the configured model (the message says why)."""


@dataclasses.dataclass(frozen=True)
class LeafMapping:
  """One parameter of ours and the Scenic array it came from.

  Attributes:
    ours: our parameter path, e.g. 'encoder/layer_0/rgb/attention/query/kernel'.
    ours_shape: its shape.
    scenic: the Scenic leaf path it was made from.
    scenic_shape: that leaf's shape.
    how: 'copied' or what was done to it.
  """

  ours: str
  ours_shape: tuple[int, ...]
  scenic: str
  scenic_shape: tuple[int, ...]
  how: str


@dataclasses.dataclass
class ImportReport:
  """What `import_checkpoint` read, mapped, left out and wrote.

  Attributes:
    checkpoint: the Scenic file read.
    step: the step the checkpoint was saved at (0 when it says none).
    parameter_root: where its parameters were ('optimizer/target' or 'params').
    layout: the Scenic model the parameters describe, in words.
    mapped: one entry per parameter of ours.
    unused: Scenic parameters our model has no use for, with why.
    left_out: train-state entries that are not parameters (optimiser state, rng).
    from_config: settings the weights do not record, as taken from the config.
    written: files written.
  """

  checkpoint: str
  step: int
  parameter_root: str
  layout: str
  mapped: list[LeafMapping] = dataclasses.field(default_factory=list)
  unused: list[str] = dataclasses.field(default_factory=list)
  left_out: list[str] = dataclasses.field(default_factory=list)
  from_config: list[str] = dataclasses.field(default_factory=list)
  written: list[str] = dataclasses.field(default_factory=list)

  def __str__(self) -> str:
    scenic_leaves = {m.scenic for m in self.mapped}
    values = sum(int(np.prod(m.ours_shape)) for m in self.mapped)
    lines = [
        f"Scenic checkpoint {self.checkpoint} (step {self.step}), parameters under {self.parameter_root}",
        f"layout: {self.layout}",
        f"{len(self.mapped)} parameters ({values / 1e6:.2f}M values) made from {len(scenic_leaves)} Scenic arrays:",
    ]
    width = max((len(f"{m.ours} {list(m.ours_shape)}") for m in self.mapped), default=0)
    for m in self.mapped:
      ours = f"{m.ours} {list(m.ours_shape)}"
      lines.append(f"  {ours:<{width}} <- {m.scenic} {list(m.scenic_shape)} ({m.how})")
    lines += [f"unused: {entry}" for entry in self.unused]
    lines += [f"left out (not parameters): {entry}" for entry in self.left_out]
    lines += [f"from the config, not the checkpoint: {entry}" for entry in self.from_config]
    lines += [f"wrote {path}" for path in self.written]
    return "\n".join(lines)

  def to_json_dict(self) -> dict[str, Any]:
    payload = dataclasses.asdict(self)
    payload["mapped"] = [dataclasses.asdict(m) for m in self.mapped]
    return payload


# ---------------------------------------------------------------------------
# Reading Scenic's checkpoint.
# ---------------------------------------------------------------------------
def _checkpoint_step(name: str) -> Optional[int]:
  match = re.fullmatch(r"checkpoint_(\d+)", name)
  return int(match.group(1)) if match else None


def resolve_checkpoint_file(path: str) -> str:
  """The file to read: `path` itself, or the highest `checkpoint_<step>` in a directory."""
  if not files.is_directory(path):
    if not files.exists(path):
      raise FileNotFoundError(f"no Scenic checkpoint at {path}")
    return path
  names = [found.rstrip("/").rsplit("/", 1)[-1] for found in files.list_files(path)]
  steps = {_checkpoint_step(name): name for name in names}
  steps.pop(None, None)
  if not steps:
    raise FileNotFoundError(f"{path} is a directory without checkpoint_<step> files")
  return files.join(path, steps[max(steps)])


def read_scenic_state(path: str) -> dict[str, Any]:
  """The train state in a Scenic checkpoint file, as nested dicts of numpy arrays."""
  data = files.read_bytes(path)
  try:
    state = flax.serialization.msgpack_restore(data)
  except Exception as error:  # msgpack raises several unrelated types on foreign bytes
    raise ScenicImportError(f"{path} is not a flax msgpack checkpoint: {type(error).__name__}: {error}") from error
  if not isinstance(state, dict):
    raise ScenicImportError(f"{path} holds a {type(state).__name__}, not a train state")
  return state


def split_train_state(state: Mapping[str, Any]) -> tuple[dict[str, Any], str, list[str], int]:
  """(parameters, where they were, the other entries, step) of a Scenic train state."""
  flat = flax.traverse_util.flatten_dict(state, sep="/")
  for root in PARAMETER_ROOTS:
    prefix = root + "/"
    params = {k[len(prefix):]: v for k, v in flat.items() if k.startswith(prefix)}
    if params:
      left_out = sorted(k for k in flat if not k.startswith(prefix))
      step = flat.get("global_step", flat.get("step", 0))
      return params, root, left_out, int(np.asarray(step)) if np.ndim(step) == 0 else 0
  raise ScenicImportError(
      f"no parameters under {' or '.join(PARAMETER_ROOTS)}; the train state holds {sorted(state)}")


# ---------------------------------------------------------------------------
# What the checkpoint is, and what the config says.
# ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ScenicLayout:
  """The Scenic MBT a set of parameter names and shapes describes.

  Attributes:
    modalities: modalities with an input embedding, in canonical order.
    classifier: 'token' (CLS parameters present) or 'gap'.
    share_encoder: one block per layer for all modalities (no
      `encoderblock_L_spectrogram` blocks with two modalities).
    num_layers: encoder blocks per modality.
    bottleneck_tokens: tokens of the 'bottleneck' parameter, or None.
    tubelet_frames: time extent of the RGB kernel (1 for 2D patches).
    representation_size: width of a pre_logits layer, or None.
  """

  modalities: tuple[str, ...]
  classifier: str
  share_encoder: bool
  num_layers: int
  bottleneck_tokens: Optional[int]
  tubelet_frames: int
  representation_size: Optional[int]

  @classmethod
  def of(cls, params: Mapping[str, np.ndarray]) -> "ScenicLayout":
    modalities = tuple(m for m, name in ((model_config.RGB, "embedding/kernel"),
                                         (model_config.SPECTROGRAM, "embedding_spectrogram/kernel")) if name in params)
    per_modality = {int(m.group(1)) for m in map(_SPECTROGRAM_BLOCK.match, params) if m}
    unsuffixed = {int(m.group(1)) for m in map(_BLOCK.match, params) if m}
    # Scenic names a layer's RGB block encoderblock_L and a spectrogram block
    # encoderblock_L_spectrogram, unless share_encoder gives every modality the
    # RGB one. (An RGB-only model reads the same either way.)
    if modalities == (model_config.RGB,):
      share_encoder = False
    else:
      share_encoder = bool(unsuffixed) and not per_modality
    rgb_kernel = params.get("embedding/kernel")
    bottleneck = params.get("bottleneck")
    pre_logits = params.get("pre_logits/kernel")
    return cls(
        modalities=modalities,
        classifier=model_config.TOKEN if "cls" in params else model_config.GAP,
        share_encoder=share_encoder,
        num_layers=len(per_modality | unsuffixed),
        bottleneck_tokens=None if bottleneck is None else int(np.shape(bottleneck)[1]),
        tubelet_frames=int(np.shape(rgb_kernel)[0]) if rgb_kernel is not None and np.ndim(rgb_kernel) == 5 else 1,
        representation_size=None if pre_logits is None else int(np.shape(pre_logits)[-1]),
    )

  def describe(self) -> str:
    fusion = f"bottleneck fusion with {self.bottleneck_tokens} tokens" if self.bottleneck_tokens else "no bottleneck"
    blocks = "one block per layer shared by the modalities" if self.share_encoder else "a block per modality"
    rgb = (f"RGB tubelets of {self.tubelet_frames} frames" if self.tubelet_frames > 1 else "RGB 2D patches") \
        if model_config.RGB in self.modalities else "no RGB"
    return (f"{'+'.join(self.modalities)}, {self.num_layers} layers, classifier '{self.classifier}', {fusion}, "
            f"{blocks}, {rgb}")


def layout_mismatches(layout: ScenicLayout, config: ml_collections.ConfigDict) -> list[str]:
  """Where the checkpoint's model differs from the configured one, each with the override that fits it."""
  problems = []
  modalities = tuple(m for m in model_config.MODALITIES if m in config.modalities)
  if layout.modalities != modalities:
    problems.append(f"the checkpoint embeds {layout.modalities}, the config reads {modalities}")
  if layout.representation_size is not None:
    problems.append(f"the checkpoint has a pre_logits layer (representation_size={layout.representation_size}), "
                    "which this model does not have")
  if config.class_heads:
    problems.append("Scenic's multi-head models keep all heads in one output_projection; only single-head "
                    "configs (num_classes) can be imported")
  if layout.classifier != config.get("classifier", model_config.TOKEN):
    problems.append(f"the checkpoint's classifier is '{layout.classifier}', the config's "
                    f"'{config.get('classifier', model_config.TOKEN)}': set --config.model.classifier={layout.classifier}")
  if layout.num_layers != config.num_layers:
    problems.append(f"the checkpoint has {layout.num_layers} layers, the config {config.num_layers}: "
                    f"set --config.model.num_layers={layout.num_layers}")
  if modalities != (model_config.RGB,) and layout.share_encoder != bool(config.get("share_encoder", False)):
    if layout.share_encoder:
      fusion = " --config.model.fusion_type=self_attention" if len(modalities) == 2 else ""
      problems.append("the checkpoint has one block per layer for all modalities (Scenic's share_encoder; with "
                      f"two modalities, its self-attention model): set --config.model.share_encoder=True{fusion}")
    else:
      problems.append("the checkpoint has a block per modality in every layer: set --config.model.share_encoder=False")
  uses_bottleneck = config.fusion_type == "bottleneck" and len(modalities) == 2
  if uses_bottleneck and layout.bottleneck_tokens is None:
    problems.append("the config fuses through bottleneck tokens, the checkpoint has none (Scenic's cross-attention "
                    "model when blocks are per modality, its self-attention model when they are shared)")
  if layout.bottleneck_tokens is not None and config.fusion_type not in ("bottleneck", "late"):
    problems.append(f"the checkpoint is a bottleneck model ({layout.bottleneck_tokens} tokens): "
                    "set --config.model.fusion_type=bottleneck")
  if (uses_bottleneck and layout.bottleneck_tokens is not None and config.fusion_layer < config.num_layers
      and layout.bottleneck_tokens != config.num_bottleneck_tokens):
    hint = (" (with classifier 'token' Scenic makes n_bottlenecks + 1 tokens and fuses through all of them)"
            if layout.classifier == model_config.TOKEN else "")
    problems.append(f"Scenic's bottleneck holds {layout.bottleneck_tokens} tokens, the config "
                    f"{config.num_bottleneck_tokens}{hint}: set "
                    f"--config.model.num_bottleneck_tokens={layout.bottleneck_tokens}")
  if (config.fusion_type == "self_attention" and len(modalities) == 2 and not config.get("share_encoder", False)
      and not layout.share_encoder):
    problems.append("Scenic has no self-attention model with a block per modality; a checkpoint with per-modality "
                    "blocks and no bottleneck is its cross-attention model: set --config.model.fusion_type="
                    "cross_attention")
  if model_config.RGB in modalities and layout.tubelet_frames != config.rgb_tubelet_frames:
    problems.append(f"the checkpoint's RGB kernel spans {layout.tubelet_frames} frame(s), the config's "
                    f"{config.rgb_tubelet_frames}: set --config.model.rgb_tubelet_frames={layout.tubelet_frames}")
  return problems


# ---------------------------------------------------------------------------
# The mapping, leaf by leaf.
# ---------------------------------------------------------------------------
Transform = Callable[[np.ndarray], np.ndarray]


def _copied(value: np.ndarray) -> np.ndarray:
  return value


def _summed_over_input_channels(kernel: np.ndarray) -> np.ndarray:
  return np.sum(kernel, axis=-2, keepdims=True)


def scenic_source(ours: str, modalities: tuple[str, ...]) -> Optional[tuple[str, Transform, str]]:
  """(Scenic leaf, transform, how) our parameter `ours` comes from; None if Scenic has none."""
  parts = ours.split("/")
  leaf = parts[-1]
  if parts[0] == "tokenizer_rgb":
    return f"embedding/{leaf}", _copied, "copied"
  if parts[0] == "tokenizer_spectrogram":
    if leaf == "kernel":
      return ("embedding_spectrogram/kernel", _summed_over_input_channels,
              "summed over its input channels: Scenic tiles the log-mel to 3 identical channels")
    return f"embedding_spectrogram/{leaf}", _copied, "copied"
  if parts[0] == "cls_rgb":
    return "cls", _copied, "copied"
  if parts[0] == "cls_spectrogram":
    return ("cls" if len(modalities) == 1 else "clsspectrogram"), _copied, "copied"
  if parts[0] == "posembed_rgb":
    return "Transformer/posembed_input/pos_embedding", _copied, "copied"
  if parts[0] == "posembed_spectrogram":
    return "Transformer/posembed_input_spectrogram/pos_embedding", _copied, "copied"
  if ours == "encoder/fusion_tokens":
    return "bottleneck", _copied, "copied, every token"
  if parts[0] == "encoder" and parts[1].startswith("norm_"):
    return f"Transformer/encoder_norm/{leaf}", _copied, "copied: one encoder_norm serves every modality"
  if parts[0] == "head" and parts[1] == "classifier":
    return f"output_projection/{leaf}", _copied, "copied"
  match = re.fullmatch(r"encoder/layer_(\d+)/([^/]+)/(.+)", ours)
  if match:
    layer, block, part_and_leaf = match.groups()
    scenic_block = f"Transformer/encoderblock_{layer}" + ("_spectrogram" if block == model_config.SPECTROGRAM else "")
    for part, scenic_part in SCENIC_BLOCK_PARTS.items():
      if part_and_leaf.startswith(part + "/"):
        return f"{scenic_block}/{scenic_part}/{part_and_leaf[len(part) + 1:]}", _copied, "copied"
  return None


def model_parameter_shapes(config: ml_collections.ConfigDict) -> dict[str, tuple[tuple[int, ...], Any]]:
  """Our parameter path -> (shape, dtype) for `config`, without initialising anything."""
  model = build_model(config)
  inputs = {m: jax.ShapeDtypeStruct(s, jnp.float32) for m, s in input_shapes(config, 1).items()}
  shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), inputs)["params"]
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(shapes), sep="/")
  return {name: (tuple(leaf.shape), leaf.dtype) for name, leaf in flat.items()}


def convert_parameters(scenic: Mapping[str, np.ndarray], config: ml_collections.ConfigDict
                       ) -> tuple[dict[str, Any], list[LeafMapping], list[str]]:
  """Our parameters made from Scenic's flat ones.

  Returns:
    (nested params, one LeafMapping per parameter of ours, Scenic leaves left
    unused with why).

  Raises:
    ScenicImportError: naming every leaf of ours Scenic lacks, every Scenic
      leaf nothing of ours takes, and every shape that does not fit.
  """
  modalities = tuple(m for m in model_config.MODALITIES if m in config.modalities)
  targets = model_parameter_shapes(config)
  converted, mapped, consumed = {}, [], set()
  missing, misfits, orphans = [], [], []
  for ours, (shape, dtype) in targets.items():
    source = scenic_source(ours, modalities)
    if source is None:
      orphans.append(ours)
      continue
    name, transform, how = source
    if name not in scenic:
      missing.append(f"{name} (for {ours})")
      continue
    consumed.add(name)
    value = transform(np.asarray(scenic[name]))
    if value.shape != shape:
      misfits.append(f"{name} {list(np.shape(scenic[name]))} gives {ours} {list(value.shape)}, "
                     f"the model has {list(shape)}")
      continue
    converted[ours] = jnp.asarray(value, dtype)
    mapped.append(LeafMapping(ours, shape, name, tuple(np.shape(scenic[name])), how))

  unused = []
  if "bottleneck" in scenic and "encoder/fusion_tokens" not in targets and config.fusion_type == "bottleneck":
    # Scenic creates the tokens even when no layer fuses through them (L_f = L).
    consumed.add("bottleneck")
    unused.append(f"bottleneck {list(np.shape(scenic['bottleneck']))}: no layer fuses (L_f = L)")
  unknown = sorted(set(scenic) - consumed)
  errors = []
  if orphans:
    errors.append("parameters of ours with no Scenic counterpart: " + ", ".join(orphans))
  if missing:
    errors.append("missing from the checkpoint: " + ", ".join(missing))
  if unknown:
    errors.append("in the checkpoint but not in the configured model: " +
                  ", ".join(f"{n} {list(np.shape(scenic[n]))}" for n in unknown))
  if misfits:
    errors.append("shapes that do not fit: " + "; ".join(misfits))
  if errors:
    raise ScenicImportError("\n".join(errors))
  return flax.traverse_util.unflatten_dict(converted, sep="/"), mapped, unused


# ---------------------------------------------------------------------------
# Writing our checkpoint.
# ---------------------------------------------------------------------------
def save_parameters(workdir: str, step: int, params: Mapping[str, Any]) -> str:
  """Writes WORKDIR/checkpoints/STEP with the item 'state' = {'step', 'params'}; returns its path.

  That is the part of a training checkpoint trainer.evaluate and
  trainer.predict restore (training also saves the optimiser and the input
  position, which an imported model has not got).
  """
  import orbax.checkpoint as ocp

  directory = files.join(files.absolute(workdir), "checkpoints")  # orbax refuses relative paths
  manager = ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(create=True),
                                  item_names=("state",))
  try:
    if manager.all_steps():
      raise FileExistsError(f"{directory} already holds checkpoints {manager.all_steps()}; choose a new --out")
    state = {"step": jnp.asarray(step, jnp.int32), "params": params}
    manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state)), force=True)
    manager.wait_until_finished()
  finally:
    manager.close()
  return files.join(files.join(workdir, "checkpoints"), str(step))


def read_label_map(path: str) -> contract.LabelMap:
  """A label map file in the contract's JSON format (a build's label_map.json)."""
  try:
    return contract.LabelMap.from_json_dict(files.read_json(path))
  except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
    raise ScenicImportError(f"{path} is not a label map ({error})") from error


def import_checkpoint(checkpoint: str, config: ml_collections.ConfigDict, out_dir: str, *,
                      label_map: Optional[str] = None) -> ImportReport:
  """Reads a Scenic checkpoint, maps it onto `config`'s model and writes it under `out_dir`.

  Args:
    checkpoint: a Scenic checkpoint file or a directory of them.
    config: this project's full config (the model is `config.model`).
    out_dir: the new workdir.
    label_map: optional label_map.json to store with the checkpoint.

  Returns:
    The report (also written to out_dir/import_report.txt and .json).

  Raises:
    ScenicImportError: the checkpoint does not fit the config; the message
      names every leaf concerned.
  """
  path = resolve_checkpoint_file(checkpoint)
  scenic, root, left_out, step = split_train_state(read_scenic_state(path))
  layout = ScenicLayout.of(scenic)
  problems = layout_mismatches(layout, config.model)
  if problems:
    raise ScenicImportError(f"{path} is a Scenic MBT with {layout.describe()}; it does not fit the config:\n  " +
                            "\n  ".join(problems))
  labels = None
  if label_map is not None:
    labels = read_label_map(label_map)
    if len(labels) != config.model.num_classes:
      raise ScenicImportError(f"{label_map} names {len(labels)} classes, the model has {config.model.num_classes}")
  params, mapped, unused = convert_parameters(scenic, config.model)

  report = ImportReport(checkpoint=path, step=step, parameter_root=root, layout=layout.describe(), mapped=mapped,
                        unused=unused)
  groups: dict[str, int] = {}
  for name in left_out:
    group = "/".join(name.split("/")[:2])
    groups[group] = groups.get(group, 0) + 1
  report.left_out = [f"{group} ({count} arrays)" if count > 1 else group for group, count in sorted(groups.items())]
  report.from_config = [f"fusion_layer={config.model.fusion_layer} (L_f; must be the value it was trained with)"]
  if model_config.RGB in config.model.modalities and config.model.rgb_tubelet_frames == 1:
    report.from_config.append(f"num_frames={config.model.num_frames} (Scenic's 2D model samples "
                              "n_sampled_frames of its input frames itself; give it those frames)")

  files.makedirs(out_dir)
  report.written.append(save_parameters(out_dir, step, params))
  config_path = files.join(out_dir, "config.json")
  files.write_bytes(config_path, config.to_json(indent=1).encode())
  report.written.append(config_path)
  if labels is not None:
    labels_path = files.join(out_dir, LABEL_MAP_NAME)
    files.write_json(labels_path, labels.to_json_dict())
    report.written.append(labels_path)
  report_path = files.join(out_dir, REPORT_NAME)
  report.written += [report_path + ".txt", report_path + ".json"]
  files.write_json(report_path + ".json", report.to_json_dict())
  files.write_bytes(report_path + ".txt", (str(report) + "\n").encode())
  return report


def main(argv) -> None:
  from absl import app, flags, logging

  logging.set_verbosity(logging.WARNING)  # orbax reports every file it writes at INFO

  if len(argv) != 2:
    raise app.UsageError("give exactly one CHECKPOINT (a Scenic checkpoint file or a directory of them)")
  values = flags.FLAGS
  try:
    report = import_checkpoint(argv[1], values.config, values.out, label_map=values.label_map)
  except (ScenicImportError, FileNotFoundError, FileExistsError) as error:
    raise SystemExit(f"import_scenic: {error}") from None
  print(report, flush=True)


if __name__ == "__main__":
  from absl import flags

  from trainer import entry_point
  from ml_collections import config_flags

  config_flags.DEFINE_config_file("config", None, "This project's config of the same model, e.g. "
                                  "trainer/configs/scenic_mbt_b16x2.py.", lock_config=True)
  flags.DEFINE_string("out", None, "The new workdir (local or gs://): checkpoints/, config.json, the report.")
  flags.DEFINE_string("label_map", None, "Optional label_map.json (a build's) to store with the checkpoint.")
  flags.mark_flags_as_required(["config", "out"])
  entry_point.run(main)
