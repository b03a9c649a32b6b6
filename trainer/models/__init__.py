"""The MBT network (no losses or metrics: the trainer adds those).

Entry points: `get_model_config` / `epic_kitchens_model_config` make a config,
`build_model(config)` makes the flax module, `MBT.__call__(inputs, train=...)`
returns (logits, intermediates). `rollout` turns returned attention into RGB
relevance maps; `vit_init` loads ImageNet-21k ViT weights.

Choices that differ from Scenic, on purpose: stochastic depth rescales kept
branches by 1 / (1 - rate) (timm; Scenic does not, so its training-time
branch is smaller in expectation than at evaluation); each modality has its
own final LayerNorm (Scenic applies one 'encoder_norm' to all tokens); the
spectrogram is one channel with the RGB patch kernel summed over channels
(Scenic repeats it to three channels); bottleneck fusion uses exactly B fusion
tokens (Scenic adds one more when the classifier is 'token'); self-attention
fusion has one block per modality below L_f (Scenic shares one block in every
layer: `share_encoder=True`); each modality's CLS is classified (Scenic's
MBT-B/16x2 config pools all tokens instead: `classifier='gap'`).
`trainer.import_scenic` maps Scenic's checkpoints onto these parameters.
"""

from trainer.models.config import (
    EPIC_KITCHENS_HEADS,
    FUSION_TYPES,
    MODALITIES,
    RGB,
    SPECTROGRAM,
    VIT_SIZES,
    epic_kitchens_model_config,
    get_model_config,
    input_shapes,
    token_grids,
    validate_model_config,
)
from trainer.models.mbt import MBT, build_model, joint_token_groups

__all__ = [
    "EPIC_KITCHENS_HEADS",
    "FUSION_TYPES",
    "MBT",
    "MODALITIES",
    "RGB",
    "SPECTROGRAM",
    "VIT_SIZES",
    "build_model",
    "epic_kitchens_model_config",
    "get_model_config",
    "input_shapes",
    "joint_token_groups",
    "token_grids",
    "validate_model_config",
]
