"""The model configuration: every field `build_model` reads, and the ViT sizes.

A model config is an `ml_collections.ConfigDict` made by `get_model_config`
(or `epic_kitchens_model_config`) with these fields:

  modalities: tuple of 'rgb' and/or 'spectrogram'. One modality gives the
    video-only or audio-only baseline (fusion_type must then be 'late').
  size: 'tiny', 'Ti', 'S' or 'B'; a label, the numbers below are what count.
  hidden_size, num_heads, mlp_dim, num_layers: the ViT backbone, filled from
    `VIT_SIZES[size]` (ViT-B: 768 / 12 / 3072 / 12).
  fusion_type: 'bottleneck', 'self_attention', 'cross_attention' or 'late'
    (paper sec. 3.2). 'late' never fuses inside the encoder.
  share_encoder: False (the paper's layout): one block per modality below
    L_f. True: Scenic's `share_encoder`, one block per layer shared by all
    modalities in EVERY layer, below L_f too (each modality still runs alone
    there); Scenic's self-attention model is self_attention with this on.
    Only with 'self_attention' or 'late'.
  fusion_layer: L_f. Layers < L_f are unimodal, layers >= L_f use the fusion
    type; 0 is early fusion, num_layers is late fusion.
  num_bottleneck_tokens: B, fusion tokens of bottleneck fusion (paper: 4).
  bottleneck_exchange: True in normal use. False stops modality tokens from
    reading the fusion tokens, which cuts the only path between modalities
    (for tests and ablations).
  cross_attention_impl: 'eq6' computes queries and the MLP only for each
    modality's own tokens (paper Eq. 6); 'scenic' runs each modality's whole
    block over all tokens and keeps its own outputs. Same outputs, more FLOPs.
  rgb_patch_size: (height, width) of RGB patches, (16, 16).
  rgb_tubelet_frames: 1 tokenises every frame on its own; 2 uses tubelets
    (3D patches of 2 x 16 x 16).
  spectrogram_patch_size: (time rows, mel bins) of spectrogram patches.
  num_frames, image_size: the RGB input, [B, num_frames, image_size,
    image_size, 3].
  spectrogram_rows: time rows of the spectrogram input, 100 per second; the
    input is [B, spectrogram_rows, contract.MEL_NUM_BINS].
  dropout_rate: dropout after the embeddings, the attention output and in the
    MLP.
  attention_dropout_rate: dropout on the attention weights.
  stochastic_depth_rate: stochastic depth of the last layer; layer i of L
    drops each residual branch with rate * i / (L - 1).
  num_classes: classes of the single classifier head (0 when class_heads is
    used).
  class_heads: named classifier heads, e.g. {'verb': 97, 'noun': 300} for
    EPIC-KITCHENS; empty for a single head. Either this or num_classes.
  zero_init_head: start the classifier at zero, as Scenic does when
    fine-tuning.
  compute_dtype: 'auto', 'float32' or 'bfloat16': the dtype of activations
    and matrix products (mixed precision). Parameters, optimiser state, the
    final LayerNorms, the logits and the loss stay float32 either way; the
    softmax and LayerNorm statistics run in float32. 'auto' is bfloat16 on GPU
    and TPU, float32 on CPU (where bfloat16 is emulated and slower).
  fused_attention: True uses jax.nn.dot_product_attention (cuDNN's fused
    kernel on GPU in bfloat16, XLA elsewhere) wherever the attention weights
    are not returned; False always takes the explicit einsum / softmax path
    (benchmarks). Same outputs either way.
  classifier: 'token' (the paper's): each modality's CLS token goes through
    the shared classifier and the logits are averaged. 'gap': Scenic's
    classifier='gap', no CLS tokens; the mean of every final modality token
    (both modalities together, fusion tokens left out) goes through one
    classifier. Scenic's MBT-B/16x2 config (the model zoo's) uses 'gap'.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections

from shared import contract

RGB = "rgb"
SPECTROGRAM = "spectrogram"
# Canonical order: concatenations and the joint attention layout follow it.
MODALITIES = (RGB, SPECTROGRAM)

FUSION_TYPES = ("bottleneck", "self_attention", "cross_attention", "late")
CROSS_ATTENTION_IMPLS = ("eq6", "scenic")
COMPUTE_DTYPES = ("auto", "float32", "bfloat16")
# Backends with native bfloat16 matrix units, where 'auto' means mixed precision.
BFLOAT16_BACKENDS = ("gpu", "tpu")
# Fusion types whose layers can share one block between the modalities.
SHARED_ENCODER_FUSION_TYPES = ("self_attention", "late")
TOKEN = "token"  # per-modality CLS tokens
GAP = "gap"  # global average pooling over all modality tokens (Scenic)
CLASSIFIERS = (TOKEN, GAP)

VIT_SIZES: dict[str, dict[str, int]] = {
    # Small enough for property tests on a 2-core CPU.
    "tiny": dict(hidden_size=32, num_heads=2, mlp_dim=64, num_layers=4),
    "Ti": dict(hidden_size=192, num_heads=3, mlp_dim=768, num_layers=12),
    "S": dict(hidden_size=384, num_heads=6, mlp_dim=1536, num_layers=12),
    "B": dict(hidden_size=768, num_heads=12, mlp_dim=3072, num_layers=12),
}

EPIC_KITCHENS_HEADS = {"verb": 97, "noun": 300}


def get_model_config(
    size: str = "B",
    *,
    modalities: Sequence[str] = MODALITIES,
    fusion_type: str | None = None,
    fusion_layer: int | None = None,
    share_encoder: bool = False,
    num_bottleneck_tokens: int = 4,
    cross_attention_impl: str = "eq6",
    num_classes: int = 527,
    class_heads: Mapping[str, int] | None = None,
    num_frames: int = 8,
    image_size: int = 224,
    audio_seconds: float = 8.0,
    rgb_tubelet_frames: int = 1,
    dropout_rate: float = 0.0,
    attention_dropout_rate: float = 0.0,
    stochastic_depth_rate: float = 0.3,
    zero_init_head: bool = True,
    classifier: str = TOKEN,
    num_layers: int | None = None,
    compute_dtype: str = "auto",
    fused_attention: bool = True,
) -> ml_collections.ConfigDict:
  """Returns a validated model config; see the module docstring for fields.

  Defaults are the paper's best AudioSet model: ViT-B, bottleneck fusion with
  B=4 at L_f=8, 8 frames of 224x224 and 8 s of audio, stochastic depth 0.3.
  `fusion_type` defaults to 'bottleneck' with two modalities, 'late' with one;
  `fusion_layer` to two thirds of the depth (8 of 12); `num_layers` to the
  size's depth.
  """
  if size not in VIT_SIZES:
    raise ValueError(f"unknown size {size!r}; choose one of {sorted(VIT_SIZES)}")
  modalities = tuple(modalities)
  if fusion_type is None:
    fusion_type = "bottleneck" if len(modalities) > 1 else "late"
  rows = audio_seconds * contract.MEL_FRAMES_PER_SECOND
  if rows != int(rows):
    raise ValueError(f"audio_seconds={audio_seconds} is not a whole number of spectrogram rows")
  config = ml_collections.ConfigDict()
  config.modalities = modalities
  config.size = size
  config.update(VIT_SIZES[size])
  if num_layers is not None:
    config.num_layers = num_layers
  config.fusion_type = fusion_type
  config.fusion_layer = config.num_layers * 2 // 3 if fusion_layer is None else fusion_layer
  config.share_encoder = share_encoder
  config.num_bottleneck_tokens = num_bottleneck_tokens
  config.bottleneck_exchange = True
  config.cross_attention_impl = cross_attention_impl
  config.rgb_patch_size = (16, 16)
  config.rgb_tubelet_frames = rgb_tubelet_frames
  config.spectrogram_patch_size = (16, 16)
  config.num_frames = num_frames
  config.image_size = image_size
  config.spectrogram_rows = int(rows)
  config.dropout_rate = dropout_rate
  config.attention_dropout_rate = attention_dropout_rate
  config.stochastic_depth_rate = stochastic_depth_rate
  config.num_classes = 0 if class_heads else num_classes
  config.class_heads = ml_collections.ConfigDict(dict(class_heads or {}))
  config.zero_init_head = zero_init_head
  config.compute_dtype = compute_dtype
  config.fused_attention = fused_attention
  config.classifier = classifier
  validate_model_config(config)
  return config


def epic_kitchens_model_config(size: str = "B", **kwargs) -> ml_collections.ConfigDict:
  """The EPIC-KITCHENS variant: 32 frames and two heads (97 verbs, 300 nouns)."""
  kwargs.setdefault("num_frames", 32)
  return get_model_config(size, class_heads=EPIC_KITCHENS_HEADS, **kwargs)


def validate_model_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first field that makes no sense."""
  modalities = tuple(config.modalities)
  if not modalities or len(set(modalities)) != len(modalities) or not set(modalities) <= set(MODALITIES):
    raise ValueError(f"modalities must be distinct names from {MODALITIES}, got {modalities}")
  if config.fusion_type not in FUSION_TYPES:
    raise ValueError(f"fusion_type must be one of {FUSION_TYPES}, got {config.fusion_type!r}")
  if len(modalities) == 1 and config.fusion_type != "late":
    raise ValueError(f"one modality ({modalities[0]}) has nothing to fuse: use fusion_type='late'")
  if config.get("share_encoder", False) and config.fusion_type not in SHARED_ENCODER_FUSION_TYPES:
    raise ValueError(
        f"share_encoder is Scenic's self-attention layout; it works with fusion_type in "
        f"{SHARED_ENCODER_FUSION_TYPES}, not {config.fusion_type!r}"
    )
  if config.get("classifier", TOKEN) not in CLASSIFIERS:
    raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {config.classifier!r}")
  if not 0 <= config.fusion_layer <= config.num_layers:
    raise ValueError(f"fusion_layer must be in [0, {config.num_layers}], got {config.fusion_layer}")
  if config.num_bottleneck_tokens < 0:
    raise ValueError(f"num_bottleneck_tokens must be >= 0, got {config.num_bottleneck_tokens}")
  if config.cross_attention_impl not in CROSS_ATTENTION_IMPLS:
    raise ValueError(
        f"cross_attention_impl must be one of {CROSS_ATTENTION_IMPLS}, got {config.cross_attention_impl!r}"
    )
  if config.hidden_size % config.num_heads:
    raise ValueError(f"hidden_size {config.hidden_size} is not a multiple of num_heads {config.num_heads}")
  if not 0.0 <= config.stochastic_depth_rate < 1.0:
    raise ValueError(f"stochastic_depth_rate must be in [0, 1), got {config.stochastic_depth_rate}")
  if bool(config.num_classes) == bool(config.class_heads):
    raise ValueError("set exactly one of num_classes and class_heads")
  if config.get("compute_dtype", "auto") not in COMPUTE_DTYPES:
    raise ValueError(f"compute_dtype must be one of {COMPUTE_DTYPES}, got {config.compute_dtype!r}")
  if config.num_frames % config.rgb_tubelet_frames:
    raise ValueError(
        f"num_frames {config.num_frames} is not a multiple of rgb_tubelet_frames {config.rgb_tubelet_frames}"
    )
  patch_h, patch_w = config.rgb_patch_size
  if config.image_size % patch_h or config.image_size % patch_w:
    raise ValueError(f"image_size {config.image_size} is not a multiple of rgb_patch_size {config.rgb_patch_size}")
  rows, bins = config.spectrogram_patch_size
  if config.spectrogram_rows % rows or contract.MEL_NUM_BINS % bins:
    raise ValueError(
        f"spectrogram {config.spectrogram_rows}x{contract.MEL_NUM_BINS} is not a whole number of "
        f"{config.spectrogram_patch_size} patches"
    )


def compute_dtype(config: ml_collections.ConfigDict, backend: str | None = None) -> Any:
  """The jnp dtype `config.compute_dtype` stands for on `backend` (default: JAX's)."""
  name = config.get("compute_dtype", "auto")
  if name == "auto":
    name = "bfloat16" if (backend or jax.default_backend()) in BFLOAT16_BACKENDS else "float32"
  return jnp.dtype(name)


def token_grids(config: ml_collections.ConfigDict) -> dict[str, tuple[int, int, int]]:
  """Patch grid (time, height, width) of each modality, CLS not included.

  RGB: (frames / tubelet_frames, image rows / 16, image columns / 16).
  Spectrogram: (1, time rows / 16, mel bins / 16), e.g. (1, 50, 8) for 8 s.
  """
  grids = {}
  if RGB in config.modalities:
    patch_h, patch_w = config.rgb_patch_size
    grids[RGB] = (
        config.num_frames // config.rgb_tubelet_frames,
        config.image_size // patch_h,
        config.image_size // patch_w,
    )
  if SPECTROGRAM in config.modalities:
    rows, bins = config.spectrogram_patch_size
    grids[SPECTROGRAM] = (1, config.spectrogram_rows // rows, contract.MEL_NUM_BINS // bins)
  return grids


def input_shapes(config: ml_collections.ConfigDict, batch_size: int) -> dict[str, tuple[int, ...]]:
  """The input array shape of each modality for a batch of `batch_size`."""
  shapes = {}
  if RGB in config.modalities:
    shapes[RGB] = (batch_size, config.num_frames, config.image_size, config.image_size, 3)
  if SPECTROGRAM in config.modalities:
    shapes[SPECTROGRAM] = (batch_size, config.spectrogram_rows, contract.MEL_NUM_BINS)
  return shapes
