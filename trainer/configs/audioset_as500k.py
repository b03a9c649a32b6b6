r"""MBT on AudioSet, trained on AS-500K, evaluated on the AudioSet eval split.

    python -m trainer.train --config trainer/configs/audioset_as500k.py \
      --workdir gs://BUCKET/runs/as500k_mbt \
      --config.data.train_dir=gs://BUCKET/audioset/as500k \
      --config.data.eval_dir=gs://BUCKET/audioset/eval \
      --config.init_from_vit=gs://BUCKET/vit/ViT-B_16-i21k.npz
    python -m trainer.evaluate --config trainer/configs/audioset_as500k.py --workdir gs://BUCKET/runs/as500k_mbt

Variants: `audioset_as500k.py:audio` (audio only), `:video` (video only).
Expected (paper, Table 1, ViT-B trained on AS-500K): MBT (A+V) 49.6 mAP on the
eval split (bottleneck fusion, B=4, L_f=8, t=8 s, modality mixup); the
audio-only and video-only rows of the same table are the baselines' targets.
"""

from trainer.configs import common


def get_config(arg=None):
  config = common.paper_config("audioset", common.parse_variant(arg), num_classes=527)
  config.data.train_dir = "gs://YOUR_BUCKET/audioset/as500k"
  config.data.eval_dir = "gs://YOUR_BUCKET/audioset/eval"
  return config
