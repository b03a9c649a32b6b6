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
  - cls -> each modality's CLS token;
  - positional embedding: the CLS entry is copied; the 14 x 14 grid is
    resized bilinearly (corners aligned, as scipy.ndimage.zoom(order=1) in
    Scenic and ViT) to each modality's patch grid and tiled over RGB frames;
  - embedding -> RGB patch kernel (a tubelet kernel gets it on its central
    time slice); the one-channel spectrogram kernel is the RGB kernel summed
    over input channels, so a grey image gives the same token either way;
  - fusion tokens and the classifier stay at their initialisation; the
    checkpoint's head and pre_logits are not used.
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
      points = np.array([(size_in - 1) / 2.0])
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
) -> tuple[dict[str, Any], VitInitReport]:
  """Returns MBT parameters initialised from a ViT checkpoint, and a report.

  Args:
    params: the model's initial 'params' collection (from `model.init`).
    checkpoint: a path (local or gs://) to the `.npz`, or its loaded arrays.
    config: the model config `params` was built from (for the patch grids).

  Returns:
    (new params, VitInitReport). Raises ValueError when a checkpoint array
    cannot fit its target (other hidden size, heads or patch size).
  """
  arrays = load_vit_checkpoint(checkpoint) if isinstance(checkpoint, str) else dict(checkpoint)
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params), sep="/")
  report = VitInitReport()
  used: set[str] = set()
  grids = model_config.token_grids(config)

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
    elif parts[0].startswith("cls_"):
      assign(target, "cls", arrays["cls"], "copied")
    elif parts[0].startswith("posembed_"):
      modality = parts[0].removeprefix("posembed_")
      assign(target, _POSEMB, _resized_posemb(arrays[_POSEMB], grids[modality]), f"grid resized to {grids[modality]}")
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


def _resized_posemb(posemb: np.ndarray, grid: tuple[int, int, int]) -> np.ndarray:
  """[1, 1 + S*S, d] ViT table -> [1, 1 + t*h*w, d] for a (t, h, w) grid."""
  side = int(round(np.sqrt(posemb.shape[1] - 1)))
  if side * side != posemb.shape[1] - 1:
    raise ValueError(f"positional embedding {posemb.shape} is not CLS + a square grid")
  frames, height, width = grid
  spatial = resize_grid_bilinear(posemb[0, 1:].reshape(side, side, -1), height, width).reshape(height * width, -1)
  # Every frame gets the same spatial table; time positions are learned later.
  return np.concatenate([posemb[0, :1], np.tile(spatial, (frames, 1))])[None]


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
