r"""The end-to-end demo's MBT: tiny enough to train on a 2-core CPU in about a minute.

Trained by `python -m demo` on the synthetic dataset it builds with the real
pipeline (demo/dataset.py: the label is (scene colour, tone pitch), so each
modality alone can be right at most half of the time). By hand, after a demo
run left its builds in runs/demo/builds:

    python -m trainer.train --config trainer/configs/demo.py:bottleneck \
        --config.data.train_dir=runs/demo/builds/train --config.data.eval_dir=runs/demo/builds/test \
        --workdir runs/demo/train/bottleneck

Variants (the argument): bottleneck (MBT, B=4, L_f=2 of 4 layers),
cross_attention (vanilla cross-attention from L_f=2), late (late fusion),
audio (audio only), video (video only). Expected on the demo's test split:
fusion variants >= 0.9 top-1, the unimodal baselines about 0.5 (they can only
guess the other modality's half of the label).
"""

from trainer.configs import common

VARIANTS = {
    # name: (config variant, fusion_type, fusion_layer)
    "bottleneck": ("av", "bottleneck", 2),
    "cross_attention": ("av", "cross_attention", 2),
    "late": ("av", "late", 4),
    "audio": ("audio", "late", 4),
    "video": ("video", "late", 4),
}


def get_config(arg=None):
  name = arg or "bottleneck"
  if name not in VARIANTS:
    raise ValueError(f"demo variant must be one of {sorted(VARIANTS)}, got {name!r}")
  variant, fusion_type, fusion_layer = VARIANTS[name]
  config = common.paper_config("vggsound", variant, num_classes=4, num_frames=4, window_seconds=1.6,
                               model_size="tiny", image_size=32, fusion_type=fusion_type,
                               fusion_layer=fusion_layer, stochastic_depth_rate=0.0)
  config.demo_variant = name
  config.data.train_dir = "runs/demo/builds/train"
  config.data.eval_dir = "runs/demo/builds/test"
  config.data.min_resize = 40
  config.data.read_threads = 2
  config.data.num_test_crops = 2
  config.data.spec_augment.time_mask_max_rows = 16
  config.data.spec_augment.freq_mask_max_bins = 8
  config.model.rgb_patch_size = (8, 8)  # a 4x4 patch grid on 32x32 crops, for readable rollout maps
  config.mixup.alpha = 0.0  # the demo's classes are few and clean; mixup only slows learning here
  config.batch_size = 16
  config.eval_batch_size = 16
  config.total_steps = 160
  config.warmup_steps = 10
  config.learning_rate = 0.1
  config.log_every_steps = 20
  config.checkpoint_every_steps = 160
  config.keep_checkpoints = 1
  return config
