"""The paper's config F as an ml_collections ConfigDict: plain data, no network code.

Experiment files in ``experiments/`` start from :func:`paper_config` and override fields; field
names follow the official ``G_style`` / ``G_mapping`` / ``G_synthesis`` / ``D_basic`` kwargs.
:func:`stylegan_jax.models.build_networks` turns a config into modules.
"""

from __future__ import annotations

import ml_collections

# Fields that older configs (and the checkpoints that stored them) hold but nothing reads any
# more; building networks and the resume check ignore them. G.truncation_psi: sampling takes
# psi explicitly (default: no truncation), so a config value was never used.
RETIRED_FIELDS = ("G.truncation_psi",)


def paper_config(resolution: int = 1024) -> ml_collections.ConfigDict:
    """Config F of the paper (FFHQ) at ``resolution``: networks and the official 8-GPU recipe."""
    config = ml_collections.ConfigDict()
    config.resolution = resolution
    config.num_channels = 3
    config.label_size = 0
    config.G = ml_collections.ConfigDict(dict(
        latent_size=512, dlatent_size=512, mapping_layers=8, mapping_fmaps=512,
        mapping_lrmul=0.01, normalize_latents=True,
        fmap_base=8192, fmap_decay=1.0, fmap_max=512,
        use_styles=True, const_input_layer=True, use_noise=True, use_pixel_norm=False,
        use_instance_norm=True, fused_scale="auto", use_blur=True,
        truncation_cutoff=8, dlatent_avg_beta=0.995, style_mixing_prob=0.9,
        # One mixing draw per group of the minibatch: the official run draws one per GPU
        # sub-batch, 8 GPUs. Small demos use 1 (one draw per minibatch).
        style_mixing_groups=8,
    ))
    config.D = ml_collections.ConfigDict(dict(
        fmap_base=8192, fmap_decay=1.0, fmap_max=512, mbstd_group_size=4, mbstd_num_features=1,
        fused_scale="auto", use_blur=True,
    ))
    # Data: a dataset prepared by `stylegan-jax prepare` (stored at `resolution`).
    config.dataset = ml_collections.ConfigDict(dict(
        name="ffhq", data_dir="data", mirror_augment=True, prefetch=4, workers=4))
    # Official `training_schedule` kwargs (train.py, 8 GPUs); per-resolution dicts keyed by str.
    # lrate_rampdown_kimg is not official (0: off; see schedule.training_schedule).
    config.sched = ml_collections.ConfigDict(dict(
        lod_initial_resolution=8, lod_training_kimg=600.0, lod_transition_kimg=600.0,
        minibatch_base=32, minibatch_dict={"4": 512, "8": 256, "16": 128, "32": 64, "64": 32},
        G_lrate_base=0.001, G_lrate_dict={"128": 0.0015, "256": 0.002, "512": 0.003,
                                          "1024": 0.003},
        D_lrate_base=0.001, D_lrate_dict={"128": 0.0015, "256": 0.002, "512": 0.003,
                                          "1024": 0.003},
        lrate_rampup_kimg=0.0, lrate_rampdown_kimg=0.0, tick_kimg_base=160.0,
        tick_kimg_dict={"4": 160, "8": 140, "16": 120, "32": 100, "64": 80, "128": 60,
                        "256": 40, "512": 30, "1024": 20},
    ))
    # Losses (official loss.py): G non-saturating logistic; D logistic + R1 (gamma 10).
    # r1_scaling 'official' reproduces the official 4**-floor(lod) weakening of R1 at low
    # resolution (its gradient is taken w.r.t. upsampled full-resolution reals); 'native'
    # applies gamma at the current resolution as most ports do.
    config.loss = ml_collections.ConfigDict(dict(
        G="logistic_nonsaturating", D="logistic_r1", r1_gamma=10.0, r1_scaling="official",
        wgan_lambda=10.0, wgan_epsilon=0.001, wgan_target=1.0))
    # TF Adam as configured by the official train.py; state reset at every lod change.
    config.opt = ml_collections.ConfigDict(dict(
        beta1=0.0, beta2=0.99, epsilon=1e-8, reset_opt_for_new_lod=True))
    config.G_smoothing_kimg = 10.0  # G EMA half-life in thousands of images
    config.total_kimg = 25000.0
    config.minibatch_repeats = 4  # schedule re-evaluated every 4 minibatches
    config.max_nonfinite_steps = 50  # stop after this many non-finite updates in a row
    config.compute_dtype = "float32"  # or "bfloat16" (params and Adam state stay float32)
    # How G's up- and D's down-convs are computed (not what they compute; checkpoints do not
    # depend on it): "fused" (the official fused ops at every resolution, with stated gradients)
    # or "reference" (the official ops literally, as fused_scale says).
    config.resample_impl = "fused"
    # Rematerialisation (not what is computed, only what is stored): G's synthesis layers and
    # D's convs at and above this resolution recompute their activations in the backward
    # passes instead of keeping them (0: off, as the official graph). Costs FLOPs (+13% at
    # 1024 on TPU) for little memory there (BENCHMARKS.md, "Cloud TPU": the layout below is
    # what makes 1024 fit).
    config.remat_resolution = 0
    # Memory layout (not what is computed): at and above this resolution, activations with
    # fewer than 128 channels keep their width as the minor dimension, which XLA:TPU would
    # otherwise pad from the channels to 128 lanes (8x the bytes at 1024x1024; the 1024 phase
    # at 4 images per chip fits a 16 GB v5e only so). 0: XLA's choice (CPU and GPU want it).
    config.layout_resolution = 0
    config.seed = 1000
    # Logging and checkpoints (ticks are sched.tick_kimg* thousand images long).
    config.image_snapshot_ticks = 1
    config.checkpoint_ticks = 1
    config.keep_checkpoints = 3
    config.snapshot_kimg = 1000.0  # one permanent checkpoint per this many kimg
    config.grid_size = 8  # an 8x8 grid of fixed latents, EMA generator, no truncation
    # Metrics during training: any names registered in stylegan_jax.metrics.registry (e.g.
    # ("fid50k",), ("fid10k", "ppl_wend")), every metrics_every_kimg (0: never). The official
    # code runs fid50k on every network snapshot. The checkpoint with the best value of
    # metrics_best (default: the first metric) is kept. Off by default: FID needs the user's
    # Inception weights file, PPL the LPIPS one.
    config.metrics = ()
    config.metrics_every_kimg = 0.0
    config.metrics_best = ""
    # How metrics run (training and `stylegan-jax metrics` defaults): weights, batch, PPL
    # face crop (auto: on for FFHQ and CelebA-HQ names), real-statistics cache ("" = the
    # user cache ~/.cache/stylegan-jax/fid, shared with `stylegan-jax metrics`).
    config.eval = ml_collections.ConfigDict(dict(
        batch_size=64, inception_weights="", inception_mode="nvidia", lpips_weights="",
        ppl_crop="auto", cache_dir=""))
    return config


# Paper Table 1, configs B-F: the official train.py flags for each row (F = the defaults).
TABLE1_ROWS = {
    "B": dict(use_styles=False, use_pixel_norm=True, use_instance_norm=False, mapping_layers=0,
              const_input_layer=False, style_mixing_prob=0.0, use_noise=False),
    "C": dict(const_input_layer=False, style_mixing_prob=0.0, use_noise=False),
    "D": dict(style_mixing_prob=0.0, use_noise=False),
    "E": dict(style_mixing_prob=0.0),
    "F": {},
}


def table1_generator(row: str) -> dict:
    """The ``config.G`` fields of a Table 1 row (B-F), with a clear error for any other."""
    if row not in TABLE1_ROWS:
        raise ValueError(f"Table 1 rows are {sorted(TABLE1_ROWS)} (A is ProGAN), got {row!r}")
    return TABLE1_ROWS[row]


def table1_config(row: str, dataset: str = "ffhq") -> ml_collections.ConfigDict:
    """A row of the paper's Table 1 at 1024x1024: FFHQ with the non-saturating loss + R1, or
    CelebA-HQ with WGAN-GP and learning rates capped at 0.002 (official train.py)."""
    config = paper_config(1024)
    config.G.update(table1_generator(row))
    if dataset == "celebahq":
        # CelebA-HQ prepared from a folder of its 1024x1024 images with `prepare`.
        config.dataset.name = "image_folder/1024_crop"
        config.loss.G, config.loss.D = "wgan", "wgan_gp"
        for table in (config.sched.G_lrate_dict, config.sched.D_lrate_dict):
            for key in list(table):
                table[key] = min(table[key], 0.002)
    elif dataset != "ffhq":
        raise ValueError(f"Table 1 datasets are 'ffhq' and 'celebahq', got {dataset!r}")
    return config


def cpu_demo_config(dataset: str, label_size: int = 0) -> ml_collections.ConfigDict:
    """Config F scaled down for the bundled 32x32 digit datasets on 2 CPU cores (the demos in
    ``experiments/``): narrow layers, 128-d latents, R1 gamma 1, growing from 16x16 with 10k
    images per phase, lr 0.002, EMA half-life 1k images, one style-mixing draw per minibatch,
    no mirroring (a mirrored digit is not a digit)."""
    config = paper_config(resolution=32)
    config.label_size = label_size
    config.G.update(dict(latent_size=128, dlatent_size=128, mapping_fmaps=128, fmap_base=256,
                         fmap_max=128, style_mixing_groups=1))
    config.D.update(dict(fmap_base=256, fmap_max=128))
    config.dataset.update(dict(name=dataset, data_dir="data", mirror_augment=False))
    config.loss.r1_gamma = 1.0
    config.sched.update(dict(lod_initial_resolution=16, lod_training_kimg=10.0,
                             lod_transition_kimg=10.0, minibatch_base=32, G_lrate_base=0.002,
                             D_lrate_base=0.002, tick_kimg_base=6.0))
    for table in ("minibatch_dict", "G_lrate_dict", "D_lrate_dict", "tick_kimg_dict"):
        config.sched[table] = {}
    config.G_smoothing_kimg = 1.0
    config.snapshot_kimg = 30.0
    return config
