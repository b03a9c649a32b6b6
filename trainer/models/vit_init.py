"""Initialising MBT from a ViT ImageNet-21k checkpoint (Scenic's recipe).

The checkpoint is the `.npz` of google-research/vision_transformer: flat
names such as `embedding/kernel` [16, 16, 3, d], `cls` [1, 1, d],
`Transformer/posembed_input/pos_embedding` [1, 1 + 14*14, d],
`Transformer/encoderblock_{i}/{LayerNorm_0, MultiHeadDotProductAttention_1,
LayerNorm_2, MlpBlock_3/Dense_0, MlpBlock_3/Dense_1}/...`,
`Transformer/encoder_norm/{scale,bias}`, plus `head` and `pre_logits`.

What goes where:
  - encoder block i -> every block of MBT layer i (each modality stream, the
    shared self-attention block, the fusion blocks);
  - encoder_norm -> each modality's final LayerNorm;
  - cls -> each modality's CLS token (see `spectrogram_cls` below);
  - positional embedding: the CLS entry is copied; the 14 x 14 grid is
    resized bilinearly (corners aligned, as scipy.ndimage.zoom(order=1) in
    Scenic and ViT) to each modality's patch grid and tiled over RGB frames
    (classifier 'gap' models have no CLS entry);
  - embedding -> RGB patch kernel (a tubelet kernel gets it on its central
    time slice); the one-channel spectrogram kernel is the RGB kernel summed
    over input channels, so a grey image gives the same token either way;
  - the classifier stays at its initialisation; the checkpoint's head and
    pre_logits are not used.

Two choices are switches (`VitInitOptions`, `config.vit_init` in the
training configs); the defaults are this project's, the alternatives
Scenic's:

  fusion_tokens   'normal' (default): the bottleneck fusion tokens keep their
                  N(0, 0.02) draw, as the paper describes them.
                  'posemb' (Scenic): they are filled from the ViT positional
                  embedding as if they were a positional table: the CLS
                  entry first (classifier 'token'), then the 14 x 14 grid
                  resized to the h x w grid of the remaining n tokens, with
                  h = floor(sqrt(n)), w = n // h (Scenic's
                  interpolate_positional_embeddings: 4 tokens -> 2 x 2).
                  Scenic's 'token' models have n + 1 fusion tokens for
                  n_bottlenecks = n, hence CLS + 2 x 2 for its n = 4.
  spectrogram_cls 'vit' (default): the spectrogram CLS starts from the ViT CLS,
                  like the RGB one.
                  'zeros' (Scenic): it is zero, Scenic's initial value.
                  Scenic's init copies 'cls' to 'cls_spectrogram', but its
                  model names that parameter 'clsspectrogram', so the copy
                  never lands.
"""

from __future__ import annotations

import dataclasses
import io
import re
from typing import Any, Mapping

import flax
import jax.numpy as jnp
import ml_collections
import numpy as np

from shared import files
from trainer.models import config as model_config
from trainer.models.rgb_tokenizer import central_frame_kernel

# Our block part -> the checkpoint's (attention/* maps to
# MultiHeadDotProductAttention_1/*).
_BLOCK_PARTS = {
    "attention_norm": "LayerNorm_0",
    "mlp_norm": "LayerNorm_2",
    "mlp/hidden": "MlpBlock_3/Dense_0",
    "mlp/output": "MlpBlock_3/Dense_1",
}
_POSEMB = "Transformer/posembed_input/pos_embedding"

FUSION_TOKENS_NORMAL = "normal"
FUSION_TOKENS_POSEMB = "posemb"
SPECTROGRAM_CLS_VIT = "vit"
SPECTROGRAM_CLS_ZEROS = "zeros"


@dataclasses.dataclass(frozen=True)
class VitInitOptions:
  """The initialisation choices of `init_from_vit` (module docstring).

  Attributes:
    fusion_tokens: 'normal' (keep the N(0, 0.02) draw; default) or 'posemb'
      (Scenic: from the ViT positional embedding).
    spectrogram_cls: 'vit' (copy the ViT CLS; default) or 'zeros' (Scenic:
      left at zero).
  """

  fusion_tokens: str = FUSION_TOKENS_NORMAL
  spectrogram_cls: str = SPECTROGRAM_CLS_VIT

  def __post_init__(self):
    if self.fusion_tokens not in (FUSION_TOKENS_NORMAL, FUSION_TOKENS_POSEMB):
      raise ValueError(f"vit_init.fusion_tokens must be 'normal' or 'posemb', got {self.fusion_tokens!r}")
    if self.spectrogram_cls not in (SPECTROGRAM_CLS_VIT, SPECTROGRAM_CLS_ZEROS):
      raise ValueError(f"vit_init.spectrogram_cls must be 'vit' or 'zeros', got {self.spectrogram_cls!r}")

  @classmethod
  def scenic(cls) -> "VitInitOptions":
    """What Scenic's MBT initialisation does."""
    return cls(fusion_tokens=FUSION_TOKENS_POSEMB, spectrogram_cls=SPECTROGRAM_CLS_ZEROS)


@dataclasses.dataclass
class VitInitReport:
  """What `init_from_vit` did.

  Attributes:
    loaded: (model parameter, checkpoint name, how) for every parameter set.
    kept_at_init: model parameters left at their initial values.
    unused: checkpoint arrays no model parameter took.
  """

  loaded: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
  kept_at_init: list[str] = dataclasses.field(default_factory=list)
  unused: list[str] = dataclasses.field(default_factory=list)

  def __str__(self) -> str:
    lines = [
        f"ViT init: {len(self.loaded)} parameters loaded, {len(self.kept_at_init)} kept at init, "
        f"{len(self.unused)} checkpoint arrays unused"
    ]
    lines += [f"  loaded  {target} <- {source} ({how})" for target, source, how in self.loaded]
    lines += [f"  at init {target}" for target in self.kept_at_init]
    lines += [f"  unused  {name}" for name in self.unused]
    return "\n".join(lines)


def load_vit_checkpoint(path: str) -> dict[str, np.ndarray]:
  """Reads a ViT `.npz` checkpoint from a local or gs:// path."""
  with np.load(io.BytesIO(files.read_bytes(path))) as npz:
    return {name: npz[name] for name in npz.files}


def resize_grid_bilinear(grid: np.ndarray, height: int, width: int) -> np.ndarray:
  """Resizes [H, W, d] to [height, width, d], linear interpolation, corners aligned."""

  def sample_points(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if size_out == 1:
      points = np.array([0.0])  # scipy.ndimage.zoom keeps the first row or column
    else:
      points = np.arange(size_out) * (size_in - 1) / (size_out - 1)
    low = np.clip(np.floor(points).astype(int), 0, size_in - 1)
    high = np.minimum(low + 1, size_in - 1)
    return low, high, (points - low)

  grid = np.asarray(grid, np.float64)
  low, high, frac = sample_points(grid.shape[0], height)
  rows = grid[low] * (1 - frac)[:, None, None] + grid[high] * frac[:, None, None]
  low, high, frac = sample_points(grid.shape[1], width)
  return rows[:, low] * (1 - frac)[None, :, None] + rows[:, high] * frac[None, :, None]


def init_from_vit(
    params: Mapping[str, Any],
    checkpoint: str | Mapping[str, np.ndarray],
    config: ml_collections.ConfigDict,
    options: VitInitOptions | Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], VitInitReport]:
  """Returns MBT parameters initialised from a ViT checkpoint, and a report.

  Args:
    params: the model's initial 'params' collection (from `model.init`).
    checkpoint: a path (local or gs://) to the `.npz`, or its loaded arrays.
    config: the model config `params` was built from (for the patch grids).
    options: VitInitOptions, or a mapping of its fields (a config's
      `vit_init`); None for the defaults.

  Returns:
    (new params, VitInitReport). Raises ValueError when a checkpoint array
    cannot fit its target (other hidden size, heads or patch size).
  """
  if not isinstance(options, VitInitOptions):
    options = VitInitOptions(**dict(options or {}))
  arrays = load_vit_checkpoint(checkpoint) if isinstance(checkpoint, str) else dict(checkpoint)
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params), sep="/")
  report = VitInitReport()
  used: set[str] = set()
  grids = model_config.token_grids(config)
  with_cls = config.get("classifier", model_config.TOKEN) == model_config.TOKEN

  def assign(target: str, source: str, value: np.ndarray, how: str) -> None:
    value = np.asarray(value)
    if value.shape != flat[target].shape:
      raise ValueError(f"{source} gives {target} shape {value.shape}, the model has {flat[target].shape}")
    flat[target] = jnp.asarray(value, flat[target].dtype)
    report.loaded.append((target, source, how))
    used.add(source)

  for target in list(flat):
    source = _block_source(target)
    if source is not None:
      if source in arrays:
        assign(target, source, arrays[source], "copied")
      continue
    parts = target.split("/")
    if parts[0] == "encoder" and parts[1].startswith("norm_"):
      assign(target, f"Transformer/encoder_norm/{parts[-1]}", arrays[f"Transformer/encoder_norm/{parts[-1]}"], "copied")
    elif parts[0] == f"cls_{model_config.SPECTROGRAM}" and options.spectrogram_cls == SPECTROGRAM_CLS_ZEROS:
      # Scenic's outcome: its zero initialisation, whatever `params` holds.
      flat[target] = jnp.zeros_like(flat[target])
      report.loaded.append((target, "(nothing)", "zeros, as Scenic leaves it"))
    elif parts[0].startswith("cls_"):
      assign(target, "cls", arrays["cls"], "copied")
    elif parts[0].startswith("posembed_"):
      modality = parts[0].removeprefix("posembed_")
      resized = _resized_posemb(arrays[_POSEMB], grids[modality], with_cls)
      assign(target, _POSEMB, resized, f"grid resized to {grids[modality]}")
    elif target == "encoder/fusion_tokens" and options.fusion_tokens == FUSION_TOKENS_POSEMB:
      tokens, how = _posemb_fusion_tokens(arrays[_POSEMB], flat[target].shape[1], with_cls)
      assign(target, _POSEMB, tokens, how)
    elif parts[0] == "tokenizer_rgb":
      _assign_rgb_embedding(assign, target, parts[-1], arrays, flat[target].shape)
    elif parts[0] == "tokenizer_spectrogram":
      if parts[-1] == "kernel":
        summed = arrays["embedding/kernel"].sum(axis=2, keepdims=True)
        assign(target, "embedding/kernel", summed, "summed over RGB channels")
      else:
        assign(target, "embedding/bias", arrays["embedding/bias"], "copied")

  loaded = {target for target, _, _ in report.loaded}
  report.kept_at_init = [target for target in flat if target not in loaded]
  report.unused = sorted(name for name in arrays if name not in used)
  return flax.traverse_util.unflatten_dict(flat, sep="/"), report


def _block_source(target: str) -> str | None:
  """Checkpoint name of an encoder block parameter, None if not a block's."""
  match = re.fullmatch(r"encoder/layer_(\d+)/[^/]+/(.+)/(kernel|bias|scale)", target)
  if match is None:
    return None
  layer, part, leaf = match.groups()
  block = f"Transformer/encoderblock_{layer}"
  if part.startswith("attention/"):  # query, key, value, out
    return f"{block}/MultiHeadDotProductAttention_1/{part.removeprefix('attention/')}/{leaf}"
  return f"{block}/{_BLOCK_PARTS[part]}/{leaf}" if part in _BLOCK_PARTS else None


def _vit_grid(posemb: np.ndarray) -> np.ndarray:
  """The [S, S, d] grid of a [1, 1 + S*S, d] ViT positional table."""
  side = int(round(np.sqrt(posemb.shape[1] - 1)))
  if side * side != posemb.shape[1] - 1:
    raise ValueError(f"positional embedding {posemb.shape} is not CLS + a square grid")
  return posemb[0, 1:].reshape(side, side, -1)


def _resized_posemb(posemb: np.ndarray, grid: tuple[int, int, int], with_cls: bool = True) -> np.ndarray:
  """[1, 1 + S*S, d] ViT table -> [1, (1 +) t*h*w, d] for a (t, h, w) grid."""
  frames, height, width = grid
  spatial = resize_grid_bilinear(_vit_grid(posemb), height, width).reshape(height * width, -1)
  # Every frame gets the same spatial table; time positions are learned later.
  parts = ([posemb[0, :1]] if with_cls else []) + [np.tile(spatial, (frames, 1))]
  return np.concatenate(parts)[None]


def _posemb_fusion_tokens(posemb: np.ndarray, count: int, with_cls: bool) -> tuple[np.ndarray, str]:
  """Scenic's fusion-token init: ([1, count, d] tokens, how) from the ViT table."""
  grid_tokens = count - 1 if with_cls else count
  if grid_tokens <= 0:
    return posemb[:, :count], "CLS entry"
  height = max(int(np.sqrt(grid_tokens)), 1)
  width = grid_tokens // height
  if height * width != grid_tokens:
    raise ValueError(f"{grid_tokens} fusion tokens do not form Scenic's {height} x {width} grid")
  spatial = resize_grid_bilinear(_vit_grid(posemb), height, width).reshape(height * width, -1)
  parts = ([posemb[0, :1]] if with_cls else []) + [spatial]
  how = ("CLS entry + " if with_cls else "") + f"grid resized to {height}x{width} (Scenic)"
  return np.concatenate(parts)[None], how


def _assign_rgb_embedding(
    assign, target: str, leaf: str, arrays: Mapping[str, np.ndarray], shape: tuple[int, ...]
) -> None:
  if leaf == "bias":
    assign(target, "embedding/bias", arrays["embedding/bias"], "copied")
  elif len(shape) == 5:
    inflated = central_frame_kernel(arrays["embedding/kernel"], shape[0])
    assign(target, "embedding/kernel", inflated, f"central slice of {shape[0]} frames")
  else:
    assign(target, "embedding/kernel", arrays["embedding/kernel"], "copied")
