r"""A tiny MBT that trains on a CPU in a minute or two, on a synthetic build.

    python -m trainer.data.synthetic --out /tmp/mbt_tiny/vggsound/train --num_clips 64
    python -m trainer.data.synthetic --out /tmp/mbt_tiny/vggsound/eval --num_clips 16 --seed 1 --split eval
    python -m trainer.train --config trainer/configs/tiny.py --workdir /tmp/mbt_tiny/run
    python -m trainer.evaluate --config trainer/configs/tiny.py --workdir /tmp/mbt_tiny/run

The argument picks the dataset kind and variant, e.g. `tiny.py:audioset`,
`tiny.py:epic_kitchens`, `tiny.py:vggsound,audio` (write the matching build with
`--dataset`; epic_kitchens also with `--verbs 4 --nouns 5`). Expected: the
training loss falls well below its start (log(4) = 1.39 for 4 classes) and the
synthetic eval set reaches top-1 near 1.0 within 150 steps: every clip shows
its class as a frame tint and a log-mel band.
"""

from trainer.configs import common


def get_config(arg=None):
  parts = [p for p in (arg or "").split(",") if p]
  dataset = next((p for p in parts if p in ("audioset", "vggsound", "epic_kitchens")), "vggsound")
  variant = common.parse_variant(next((p for p in parts if p in common.VARIANTS), None))
  heads = {"verb": 4, "noun": 5} if dataset == "epic_kitchens" else None
  config = common.paper_config(dataset, variant, num_classes=0 if heads else 4, class_heads=heads, num_frames=4,
                               window_seconds=0.64, model_size="tiny", image_size=32, fusion_layer=2,
                               stochastic_depth_rate=0.0)
  config.data.train_dir = f"/tmp/mbt_tiny/{dataset}/train"
  config.data.eval_dir = f"/tmp/mbt_tiny/{dataset}/eval"
  config.data.min_resize = 48
  config.data.read_threads = 2
  config.data.spec_augment.time_mask_max_rows = 16
  config.data.spec_augment.freq_mask_max_bins = 8
  config.batch_size = 8
  config.eval_batch_size = 8
  config.total_steps = 150
  config.warmup_steps = 10
  config.learning_rate = 0.1
  config.log_every_steps = 10
  config.checkpoint_every_steps = 50
  return config
