r"""Scenic's MBT-B/16x2 on AudioSet: the settings of the Scenic model zoo's checkpoints.

Import a released checkpoint (Scenic's model zoo, scenic/projects/mbt/README.md),
then evaluate it on an AudioSet eval build or classify any video:

    python -m trainer.import_scenic mbtb32_as-500k_rgb-spec --config trainer/configs/scenic_mbt_b16x2.py \
        --out runs/scenic/as500k_rgb-spec --label_map builds/audioset/eval/label_map.json
    python -m trainer.evaluate --config trainer/configs/scenic_mbt_b16x2.py --workdir runs/scenic/as500k_rgb-spec \
        --split_dir builds/audioset/eval
    python -m trainer.predict --config trainer/configs/scenic_mbt_b16x2.py --checkpoint runs/scenic/as500k_rgb-spec \
        clip.mp4@30-40

Variants: `scenic_mbt_b16x2.py:audio` (Spec), `scenic_mbt_b16x2.py:video` (RGB);
the default is RGB+Spec. Training this model from ViT-B/16 ImageNet-21k the
Scenic way also works (Scenic's recipe for AS-mini):

    python -m trainer.train --config trainer/configs/scenic_mbt_b16x2.py --workdir runs/mbt_b16x2 \
        --config.data.train_dir=builds/audioset/balanced_train --config.data.eval_dir=builds/audioset/eval \
        --config.init_from_vit=ViT-B_16-i21k.npz

Expected (the zoo's table, mAP on AudioSet eval; Scenic notes that the numbers
drift as eval videos disappear): trained on AS-mini, Spec 30.9, RGB 27.0,
RGB+Spec 43.9; on AS-500K, Spec 44.0, RGB 33.9, RGB+Spec 52.3. Our log-mel
front end (Kaldi fbank, SPEC sec. 3) is the paper's description, not
necessarily the exact features these checkpoints saw, and Scenic's
normalisation statistics (1.102, 2.762) are set here for them: expect the
imported models near these figures, not necessarily on them.

The model (Scenic's configs/audioset/balanced_audioset_base.py): ViT-B, RGB as
tubelets of 2 x 16 x 16 over 32 frames taken every 2nd frame at 25 fps
(16 x 14 x 14 tokens), 8 s of log-mel (50 x 8 tokens), bottleneck fusion with
4 tokens from L_f = 8, classifier 'gap' (no CLS tokens: the mean of all final
tokens is classified, so there is no extra bottleneck token either), separate
blocks per modality.
"""

from trainer.configs import common

ZOO_MEL_MEAN = 1.102  # Scenic's spec_mean, over AudioSet's unbalanced train set
ZOO_MEL_STD = 2.762  # Scenic's spec_stddev


def get_config(arg=None):
  variant = common.parse_variant(arg)
  config = common.paper_config("audioset", variant, num_classes=527, num_frames=32, window_seconds=8.0,
                               rgb_tubelet_frames=2, classifier="gap", fusion_layer=8, num_bottleneck_tokens=4)
  config.data.train_dir = "gs://YOUR_BUCKET/audioset/balanced_train"
  config.data.eval_dir = "gs://YOUR_BUCKET/audioset/eval"
  config.data.frame_stride = 2.0  # 32 frames every 2nd frame: 2.56 s of video inside the 8 s of audio
  config.data.melspec_mean = ZOO_MEL_MEAN
  config.data.melspec_std = ZOO_MEL_STD
  config.data.spec_augment.time_mask_max_rows = 48  # Scenic's: 4 time masks of <= 48 rows, 1 of <= 48 bins
  config.data.spec_augment.time_mask_count = 4
  config.mixup.alpha = 0.5
  config.mixup.per_modality = False  # Scenic's mixmod = False
  config.label_smoothing = 0.3
  config.vit_init.fusion_tokens = "posemb"  # Scenic's initialisation (trainer/models/vit_init.py)
  config.vit_init.spectrogram_cls = "zeros"
  config.checkpoint_every_steps = 500
  return config
