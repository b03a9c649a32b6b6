r"""MBT on EPIC-KITCHENS-100 action recognition (verb and noun heads).

    python -m trainer.train --config trainer/configs/epic_kitchens.py \
      --workdir gs://BUCKET/runs/epic_mbt \
      --config.data.train_dir=gs://BUCKET/epic_kitchens/train \
      --config.data.eval_dir=gs://BUCKET/epic_kitchens/validation \
      --config.init_from_vit=gs://BUCKET/vit/ViT-B_16-i21k.npz

32 frames at stride 1 (1.28 s of video, paper sec. 4.2). The paper does not
give EPIC's audio span; this config takes t = 2.56 s (256 log-mel rows, about
the mean action length of 2.6 s) from the same start. Loss: the mean of the
verb and noun cross-entropies; action top-1 = top verb and top noun both right.
Variants: `epic_kitchens.py:audio`, `epic_kitchens.py:video`.
Expected (paper, Table 2, ViT-B): MBT (A+V) 43.4 action top-1 on the validation
set; audio alone is much weaker than video on EPIC-KITCHENS.
"""

from trainer.configs import common
from trainer.models import EPIC_KITCHENS_HEADS


def get_config(arg=None):
  config = common.paper_config("epic_kitchens", common.parse_variant(arg), class_heads=dict(EPIC_KITCHENS_HEADS),
                               num_frames=32, window_seconds=2.56)
  config.data.frame_stride = 1.0
  config.data.train_dir = "gs://YOUR_BUCKET/epic_kitchens/train"
  config.data.eval_dir = "gs://YOUR_BUCKET/epic_kitchens/validation"
  return config
