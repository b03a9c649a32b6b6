"""MBT: the Multimodal Bottleneck Transformer (Nagrani et al., 2021)."""

from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from shared import contract
from trainer.models import config as model_config
from trainer.models.classifier_head import ClassifierHead, Logits
from trainer.models.cls_token import ClsToken
from trainer.models.encoder import Encoder
from trainer.models.positional_embedding import PositionalEmbedding
from trainer.models.rgb_tokenizer import RgbTokenizer
from trainer.models.spectrogram_tokenizer import SpectrogramTokenizer
from trainer.models.token_layout import FUSION_TOKENS


class MBT(nn.Module):
  """Audio-visual transformer: tokenise, encode with fusion, classify.

  Each modality is tokenised by its own patch projection, gets its own CLS
  token and positional embedding, then the Encoder runs the streams with the
  configured fusion; each modality's final CLS goes through one shared
  classifier and the logits are averaged. With classifier 'gap' (Scenic's)
  there are no CLS tokens and the mean of all final modality tokens goes
  through the classifier. Build it with `build_model(config)`.

  Attributes:
    modalities: modality names in canonical order ('rgb', 'spectrogram').
    hidden_size: d.
    num_layers: L.
    num_heads: attention heads.
    mlp_dim: MLP width.
    fusion_type: 'bottleneck', 'self_attention', 'cross_attention' or 'late'.
    fusion_layer: L_f.
    share_encoder: one block per layer for all modalities, in every layer.
    num_bottleneck_tokens: B.
    bottleneck_exchange: False cuts the bottleneck (tests and ablations).
    cross_attention_impl: 'eq6' or 'scenic'.
    rgb_patch_size: RGB patch (height, width).
    rgb_tubelet_frames: frames per RGB token (1: per-frame patches).
    spectrogram_patch_size: spectrogram patch (rows, mel bins).
    dropout_rate: dropout after embedding and inside blocks.
    attention_dropout_rate: dropout on attention weights.
    stochastic_depth_rate: stochastic depth of the last layer.
    num_classes: classes of a single head (0 with class_heads).
    class_heads: ((name, classes), ...) for several heads.
    zero_init_head: zero-initialise the classifier.
    dtype: dtype of activations and matrix products from the tokenisers to the
      last block (bfloat16 for mixed precision); the final LayerNorms, the
      classifier and the logits are float32, and so are all parameters.
    fused_attention: fused attention kernel unless attention is returned.
    classifier: 'token' (CLS per modality) or 'gap' (mean of all tokens).
  """

  modalities: tuple[str, ...]
  hidden_size: int
  num_layers: int
  num_heads: int
  mlp_dim: int
  fusion_type: str = "bottleneck"
  fusion_layer: int = 8
  share_encoder: bool = False
  num_bottleneck_tokens: int = 4
  bottleneck_exchange: bool = True
  cross_attention_impl: str = "eq6"
  rgb_patch_size: tuple[int, int] = (16, 16)
  rgb_tubelet_frames: int = 1
  spectrogram_patch_size: tuple[int, int] = (16, 16)
  dropout_rate: float = 0.0
  attention_dropout_rate: float = 0.0
  stochastic_depth_rate: float = 0.0
  num_classes: int = 0
  class_heads: tuple[tuple[str, int], ...] = ()
  zero_init_head: bool = True
  dtype: Any = jnp.float32
  fused_attention: bool = True
  classifier: str = model_config.TOKEN

  def _tokenizer(self, modality: str) -> nn.Module:
    if modality == model_config.RGB:
      return RgbTokenizer(self.hidden_size, self.rgb_patch_size, self.rgb_tubelet_frames, dtype=self.dtype,
                          name="tokenizer_rgb")
    return SpectrogramTokenizer(self.hidden_size, self.spectrogram_patch_size, dtype=self.dtype,
                                name="tokenizer_spectrogram")

  @nn.compact
  def __call__(
      self, inputs: Mapping[str, jnp.ndarray], *, train: bool, return_attention: bool = False
  ) -> tuple[Logits, dict[str, Any]]:
    """Classifies a batch of clips.

    Args:
      inputs: 'rgb' -> [B, T, H, W, 3] float and/or 'spectrogram' ->
        [B, rows, contract.MEL_NUM_BINS] float, one entry per configured
        modality (other entries are ignored).
      train: enables dropout and stochastic depth (needs a 'dropout' rng).
      return_attention: also return every layer's joint attention.

    Returns:
      (logits, intermediates). logits: [B, num_classes] averaged over
      modalities, or {head: [B, classes]}. intermediates:
        'logits_per_modality': modality -> logits of that modality's CLS;
        'cls_embeddings': modality -> [B, d] final (normalised) CLS
          (classifier 'token');
        'pooled_embedding': [B, d] mean of all final modality tokens
          (classifier 'gap'; every modality's entry of
          'logits_per_modality' is then the one joint prediction);
        'fusion_tokens': [B, num_bottleneck_tokens, d] final fusion tokens
          (bottleneck fusion only);
        'attention': [B, L, N, N] joint head-averaged attention over the
          layout of `joint_token_groups` (only with return_attention).
    """
    missing = [m for m in self.modalities if m not in inputs]
    if missing:
      raise ValueError(f"inputs lack {missing}; this model reads {self.modalities}")
    spectrogram = inputs.get(model_config.SPECTROGRAM)
    if model_config.SPECTROGRAM in self.modalities and spectrogram.shape[-1] != contract.MEL_NUM_BINS:
      raise ValueError(f"spectrogram must have {contract.MEL_NUM_BINS} mel bins, got {spectrogram.shape}")

    tokens = {}
    for modality in self.modalities:
      embedded = self._tokenizer(modality)(jnp.asarray(inputs[modality], self.dtype))
      if self.classifier == model_config.TOKEN:
        embedded = ClsToken(name=f"cls_{modality}")(embedded)
      embedded = PositionalEmbedding(name=f"posembed_{modality}")(embedded)
      tokens[modality] = nn.Dropout(rate=self.dropout_rate)(embedded, deterministic=not train)

    encoded, attention = Encoder(
        modalities=self.modalities,
        num_layers=self.num_layers,
        num_heads=self.num_heads,
        mlp_dim=self.mlp_dim,
        fusion_type=self.fusion_type,
        fusion_layer=self.fusion_layer,
        share_encoder=self.share_encoder,
        num_bottleneck_tokens=self.num_bottleneck_tokens,
        bottleneck_exchange=self.bottleneck_exchange,
        cross_attention_impl=self.cross_attention_impl,
        dropout_rate=self.dropout_rate,
        attention_dropout_rate=self.attention_dropout_rate,
        stochastic_depth_rate=self.stochastic_depth_rate,
        dtype=self.dtype,
        fused_attention=self.fused_attention,
        name="encoder",
    )(tokens, deterministic=not train, return_attention=return_attention)

    head = ClassifierHead(
        num_classes=self.num_classes, class_heads=self.class_heads, zero_init=self.zero_init_head, name="head"
    )
    if self.classifier == model_config.TOKEN:
      cls_embeddings = {modality: encoded[modality][:, 0] for modality in self.modalities}
      logits, logits_per_modality = head(cls_embeddings)
      intermediates: dict[str, Any] = {"logits_per_modality": logits_per_modality, "cls_embeddings": cls_embeddings}
    else:
      # Scenic's 'gap': one mean over the tokens of all modalities together, so
      # a modality weighs by its token count. The per-modality loss then sees
      # the one joint prediction once per modality.
      pooled = jnp.mean(jnp.concatenate([encoded[modality] for modality in self.modalities], axis=1), axis=1)
      logits, _ = head({"pooled": pooled})
      logits_per_modality = {modality: logits for modality in self.modalities}
      intermediates = {"logits_per_modality": logits_per_modality, "pooled_embedding": pooled}
    if FUSION_TOKENS in encoded:
      intermediates["fusion_tokens"] = encoded[FUSION_TOKENS]
    if attention is not None:
      intermediates["attention"] = attention
    return logits, intermediates


def build_model(config: ml_collections.ConfigDict) -> MBT:
  """Builds the MBT a model config (see `trainer.models.config`) describes."""
  model_config.validate_model_config(config)
  return MBT(
      modalities=tuple(m for m in model_config.MODALITIES if m in config.modalities),
      hidden_size=config.hidden_size,
      num_layers=config.num_layers,
      num_heads=config.num_heads,
      mlp_dim=config.mlp_dim,
      fusion_type=config.fusion_type,
      fusion_layer=config.fusion_layer,
      share_encoder=config.get("share_encoder", False),
      num_bottleneck_tokens=config.num_bottleneck_tokens,
      bottleneck_exchange=config.bottleneck_exchange,
      cross_attention_impl=config.cross_attention_impl,
      rgb_patch_size=tuple(config.rgb_patch_size),
      rgb_tubelet_frames=config.rgb_tubelet_frames,
      spectrogram_patch_size=tuple(config.spectrogram_patch_size),
      dropout_rate=config.dropout_rate,
      attention_dropout_rate=config.attention_dropout_rate,
      stochastic_depth_rate=config.stochastic_depth_rate,
      num_classes=config.num_classes,
      class_heads=tuple((name, int(size)) for name, size in config.class_heads.items()),
      zero_init_head=config.zero_init_head,
      dtype=model_config.compute_dtype(config),
      fused_attention=config.get("fused_attention", True),
      classifier=config.get("classifier", model_config.TOKEN),
  )


def joint_token_groups(config: ml_collections.ConfigDict) -> list[tuple[str, int]]:
  """(group, tokens) in the order of the joint attention matrix, CLS included.

  Modalities in canonical order (each 1 CLS + patches; patches only with
  classifier 'gap'), then the fusion tokens when bottleneck fusion is used
  below L.
  """
  grids = model_config.token_grids(config)
  cls = 1 if config.get("classifier", model_config.TOKEN) == model_config.TOKEN else 0
  groups = [(m, cls + grids[m][0] * grids[m][1] * grids[m][2]) for m in model_config.MODALITIES if m in grids]
  fusing = config.fusion_type != "late" and len(groups) > 1 and config.fusion_layer < config.num_layers
  if config.fusion_type == "bottleneck" and fusing:
    groups.append((FUSION_TOKENS, config.num_bottleneck_tokens))
  return groups
