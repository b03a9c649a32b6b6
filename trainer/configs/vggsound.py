r"""MBT on VGGSound (309 classes, softmax cross-entropy, top-1 / top-5).

    python -m trainer.train --config trainer/configs/vggsound.py \
      --workdir gs://BUCKET/runs/vggsound_mbt \
      --config.data.train_dir=gs://BUCKET/vggsound/train \
      --config.data.eval_dir=gs://BUCKET/vggsound/test \
      --config.init_from_vit=gs://BUCKET/vit/ViT-B_16-i21k.npz

Variants: `vggsound.py:audio`, `vggsound.py:video`.
Expected (paper, Table 3, ViT-B): MBT (A+V) 64.1 top-1 on the test set; the paper
finds the audio-only and video-only baselines about equally strong on VGGSound.
"""

from trainer.configs import common


def get_config(arg=None):
  config = common.paper_config("vggsound", common.parse_variant(arg), num_classes=309)
  config.data.train_dir = "gs://YOUR_BUCKET/vggsound/train"
  config.data.eval_dir = "gs://YOUR_BUCKET/vggsound/test"
  return config
