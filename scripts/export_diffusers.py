#!/usr/bin/env python3
"""Exports a diffusers UNet2DModel and its scheduler config as a scoreflow model.

    python3 scripts/export_diffusers.py --unet PIPELINE/unet --scheduler-config PIPELINE/scheduler/scheduler_config.json \\
        --out model.pt

--unet takes a folder that `diffusers.UNet2DModel.from_pretrained` reads (config.json + weights);
when it is a pipeline's unet/ folder, the scheduler config next to it is found on its own. The
scheduler config gives the schedule (beta_schedule linear | scaled_linear | squaredcos_cap_v2 |
sigmoid, or trained_betas; beta_start, beta_end, num_train_timesteps, rescale_betas_zero_snr) and
the prediction (prediction_type epsilon | v_prediction | sample); the network's time input is the
discrete timestep index. variance_type learned/learned_range means the UNet outputs 2C channels;
the exported forward returns the first C. Sampling-time settings (timestep_spacing, steps_offset,
clip_sample, thresholding) are noted in the metadata's description: scoreflow picks its own grid.

--random-init exports a randomly initialised stand-in with UNet2DModel's call signature
(forward(sample, timestep, class_labels=None, return_dict=True) -> .sample), for tests; diffusers
is not needed for it. After writing, the file is reloaded and scoreflow's D(x, sigma) is compared
with the original module at three timesteps (see scripts/scoreflow_export.py).
"""
import argparse
import json
import math
import os
import sys
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scoreflow_export as sx  # noqa: E402

SCHEDULE_NAMES = {"linear": "linear", "scaled_linear": "scaled_linear", "squaredcos_cap_v2": "cosine"}
PREDICTIONS = {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}
NOTED = ("timestep_spacing", "steps_offset", "clip_sample", "clip_sample_range", "thresholding",
         "set_alpha_to_one", "use_karras_sigmas", "interpolation_type")


class StandInUNet2DModel(torch.nn.Module):
    """A tiny network with diffusers.UNet2DModel's interface: `config` (sample_size, in_channels,
    out_channels, num_class_embeds), sinusoidal timestep projection (flip_sin_to_cos, freq_shift 0)
    -> TimestepEmbedding MLP, optional class embedding added to it, forward returning `.sample`."""

    def __init__(self, sample_size=16, in_channels=3, out_channels=3, num_class_embeds=None, ch=16):
        super().__init__()
        self.config = {"sample_size": sample_size, "in_channels": in_channels, "out_channels": out_channels,
                       "num_class_embeds": num_class_embeds, "class_embed_type": None,
                       "center_input_sample": False, "_class_name": "UNet2DModel"}
        self.ch = ch
        self.time_embedding = torch.nn.Sequential(torch.nn.Linear(ch, 2 * ch), torch.nn.SiLU(),
                                                  torch.nn.Linear(2 * ch, 2 * ch))
        self.class_embedding = torch.nn.Embedding(num_class_embeds, 2 * ch) if num_class_embeds else None
        self.core = sx.TinyUNetCore(in_channels, out_channels, ch, 2 * ch)

    def forward(self, sample, timestep, class_labels=None, return_dict=True):
        if not torch.is_tensor(timestep):
            timestep = torch.tensor([timestep], dtype=torch.long)
        if timestep.dim() == 0:
            timestep = timestep[None]
        timestep = timestep * torch.ones(sample.shape[0], dtype=timestep.dtype)
        emb = self.time_embedding(sx.sinusoidal(timestep, self.ch, flip_sin_to_cos=True, shift=0.0))
        if self.class_embedding is not None:
            if class_labels is None:
                raise ValueError("class_labels should be provided when doing class conditioning")
            emb = emb + self.class_embedding(class_labels)
        out = self.core(sample, emb)
        return SimpleNamespace(sample=out) if return_dict else (out,)


class Exported(torch.nn.Module):
    """forward(x_t, t[, y]) -> the first C output channels of unet(x_t, t, class_labels=y)."""

    def __init__(self, unet, channels: int, conditional: bool):
        super().__init__()
        self.unet, self.channels, self.conditional = unet, channels, conditional

    def raw(self, x, t, y=None):
        kwargs = {"class_labels": y} if self.conditional else {}
        out = self.unet(x, t, return_dict=False, **kwargs)
        return out[0] if isinstance(out, (tuple, list)) else out.sample

    def forward(self, x, t, y=None):
        return self.raw(x, t, y)[:, : self.channels]


def config_value(cfg, key, default=None):
    return cfg.get(key, default) if isinstance(cfg, dict) else getattr(cfg, key, default)


def diffusers_alphas_cumprod(cfg: dict) -> np.ndarray:
    """alpha-bar from a scheduler config, following diffusers' DDPMScheduler (in float64)."""
    n = int(cfg.get("num_train_timesteps", 1000))
    b0, b1 = float(cfg.get("beta_start", 1e-4)), float(cfg.get("beta_end", 0.02))
    name = cfg.get("beta_schedule", "linear")
    if cfg.get("trained_betas") is not None:
        betas = np.asarray(cfg["trained_betas"], dtype=np.float64)
    elif name == "linear":
        betas = np.linspace(b0, b1, n, dtype=np.float64)
    elif name == "scaled_linear":
        betas = np.linspace(b0 ** 0.5, b1 ** 0.5, n, dtype=np.float64) ** 2
    elif name == "squaredcos_cap_v2":
        ab = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
        betas = np.array([min(1 - ab((i + 1) / n) / ab(i / n), 0.999) for i in range(n)])
    elif name == "sigmoid":
        betas = 1 / (1 + np.exp(-np.linspace(-6, 6, n))) * (b1 - b0) + b0
    else:
        sx.die(f"scheduler config: unknown beta_schedule '{name}'; valid: linear, scaled_linear, "
               "squaredcos_cap_v2, sigmoid (or trained_betas)")
    ab = np.cumprod(1 - betas)
    if cfg.get("rescale_betas_zero_snr", False):
        s = np.sqrt(ab)
        s0, sT = s[0], s[-1]
        ab = ((s - sT) * s0 / (s0 - sT)) ** 2
    return ab


def schedule_metadata(cfg: dict) -> dict:
    n = int(cfg.get("num_train_timesteps", 1000))
    sch = {"type": "vp_discrete"}
    name = cfg.get("beta_schedule", "linear")
    if cfg.get("trained_betas") is not None or name == "sigmoid":
        ab = diffusers_alphas_cumprod(dict(cfg, rescale_betas_zero_snr=False))
        betas = 1 - ab / np.concatenate([[1.0], ab[:-1]])
        sch["betas"] = [float(b) for b in betas]
    elif name in SCHEDULE_NAMES:
        sch["betas"] = SCHEDULE_NAMES[name]
        if name != "squaredcos_cap_v2":
            sch["beta_start"] = float(cfg.get("beta_start", 1e-4))
            sch["beta_end"] = float(cfg.get("beta_end", 0.02))
        sch["num_train_steps"] = n
    else:
        diffusers_alphas_cumprod(cfg)  # refuses the unknown name
    if cfg.get("rescale_betas_zero_snr", False):
        sch["rescale_zero_terminal_snr"] = True
    return sch


def read_scheduler_config(path: str) -> dict:
    sx.require_file(path, "--scheduler-config")
    try:
        with open(path) as f:
            cfg = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        sx.die(f"--scheduler-config '{path}' is not valid JSON: {e}")
    if not isinstance(cfg, dict):
        sx.die(f"--scheduler-config '{path}' must hold a JSON object")
    if cfg.get("_class_name") in ("ScoreSdeVeScheduler", "ScoreSdeVpScheduler", "KarrasVeScheduler"):
        sx.die(f"--scheduler-config '{path}' is a {cfg['_class_name']}; this script reads DDPM-type "
               "(beta schedule) configs. Export score-SDE networks with --meta overrides instead")
    pred = cfg.get("prediction_type", "epsilon")
    if pred not in PREDICTIONS:
        sx.die(f"scheduler config: unknown prediction_type '{pred}'; valid: {', '.join(PREDICTIONS)}")
    return cfg


def load_unet(args):
    if args.random_init:
        torch.manual_seed(args.seed)
        c = args.in_channels
        learned = str(args.stand_in_variance).startswith("learned")
        return StandInUNet2DModel(sample_size=args.sample_size, in_channels=c,
                                  out_channels=2 * c if learned else c,
                                  num_class_embeds=args.stand_in_classes or None)
    if not args.unet:
        sx.die("--unet DIR is required (a diffusers UNet2DModel folder), or --random-init for the stand-in")
    sx.require_file(args.unet, "--unet")
    try:
        import diffusers
    except ImportError:
        sx.die("loading --unet needs the diffusers package (pip install diffusers); "
               "--random-init exports the built-in stand-in without it")
    if not os.path.exists(os.path.join(args.unet, "config.json")):
        sx.die(f"--unet '{args.unet}' has no config.json (give the pipeline's unet/ folder)")
    with open(os.path.join(args.unet, "config.json")) as f:
        cls_name = json.load(f).get("_class_name", "UNet2DModel")
    if cls_name != "UNet2DModel":
        sx.die(f"--unet '{args.unet}' is a {cls_name}; only UNet2DModel (forward(sample, timestep[, class_labels])) "
               "fits scoreflow's forward(x, t[, y])")
    unet = diffusers.UNet2DModel.from_pretrained(args.unet).float().eval()
    if unet.config.get("time_embedding_type") == "fourier":
        sx.die(f"--unet '{args.unet}' has a Fourier time embedding (a score-SDE network taking sigma, "
               "not a timestep index); this script exports DDPM-type UNet2DModels")
    if hasattr(unet, "set_default_attn_processor"):  # plain bmm/softmax attention, not PyTorch 2's fused op
        unet.set_default_attn_processor()
    return unet


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--unet", help="diffusers UNet2DModel folder (config.json + weights)")
    p.add_argument("--scheduler-config", help="scheduler_config.json (default: ../scheduler/ next to --unet)")
    p.add_argument("--out", required=True, help="TorchScript archive to write")
    p.add_argument("--ref", help="also write x, sigma, labels, denoised (the reference D) as .npz")
    p.add_argument("--shape", help="C,H,W (default: in_channels and sample_size of the UNet config)")
    p.add_argument("--num-classes", type=int, help="class labels (default: num_class_embeds of the UNet config)")
    p.add_argument("--data-range", default="-1,1", help="data range lo,hi (default -1,1)")
    p.add_argument("--null-class", action="store_true",
                   help="the UNet's last class embedding is the unconditional (dropped-label) class")
    p.add_argument("--random-init", action="store_true", help="export the randomly initialised stand-in")
    p.add_argument("--sample-size", type=int, default=16, help="stand-in: image size")
    p.add_argument("--in-channels", type=int, default=3, help="stand-in: channels")
    p.add_argument("--stand-in-classes", type=int, default=0, help="stand-in: num_class_embeds (0: none)")
    p.add_argument("--stand-in-variance", default=None,
                   help="stand-in: build it with 2C outputs when 'learned'/'learned_range' "
                        "(default: the scheduler config's variance_type)")
    p.add_argument("--seed", type=int, default=0, help="stand-in: initialisation seed")
    args = p.parse_args()

    cfg_path = args.scheduler_config
    if not cfg_path and args.unet:
        guess = os.path.join(os.path.dirname(os.path.normpath(args.unet)), "scheduler", "scheduler_config.json")
        cfg_path = guess if os.path.exists(guess) else None
    if not cfg_path:
        sx.die("--scheduler-config FILE is required (the pipeline's scheduler/scheduler_config.json)")
    cfg = read_scheduler_config(cfg_path)
    variance = cfg.get("variance_type") or "fixed_small"
    learned = str(variance).startswith("learned")
    if args.stand_in_variance is None:
        args.stand_in_variance = variance

    unet = load_unet(args)
    ucfg = unet.config
    size = config_value(ucfg, "sample_size")
    c = config_value(ucfg, "in_channels")
    shape = sx.parse_ints(args.shape, "--shape", 3) if args.shape else None
    if shape is None:
        if size is None or c is None:
            sx.die("the UNet config has no sample_size/in_channels; give --shape C,H,W")
        hw = [size, size] if isinstance(size, int) else list(size)
        shape = [int(c)] + [int(v) for v in hw]
    sx.check_spatial(args.out, shape, size, "sample_size")
    arch_classes = config_value(ucfg, "num_class_embeds") or 0
    if args.null_class and not arch_classes:
        sx.die("--null-class needs a UNet with num_class_embeds")
    # With --null-class the last embedding is the dropped-label class: it becomes scoreflow's
    # unconditional label K. Without it, label K leaves the class embedding out (zero).
    default_classes = arch_classes - 1 if args.null_class else arch_classes
    num_classes = default_classes if args.num_classes is None else args.num_classes
    if arch_classes and not args.null_class and isinstance(getattr(unet, "class_embedding", None), torch.nn.Embedding):
        unet.class_embedding = sx.NullableEmbedding(unet.class_embedding)
    if num_classes < 0:
        sx.die(f"--num-classes must be >= 0, got {num_classes}")
    if arch_classes and num_classes == 0:
        sx.fail_export(args.out, f"num_classes: --num-classes 0 but the UNet has num_class_embeds {arch_classes}")

    notes = [f"{k}={cfg[k]}" for k in NOTED if k in cfg]
    meta = {
        "prediction": PREDICTIONS[cfg.get("prediction_type", "epsilon")],
        "schedule": schedule_metadata(cfg),
        "time_input": "index",
        "shape": shape,
        "data_range": sx.parse_range(args.data_range),
        "num_classes": int(num_classes),
        "head": "none",
        "name": "diffusers UNet2DModel" + (" (random stand-in)" if args.random_init else ""),
        "description": f"exported by scripts/export_diffusers.py from {cfg.get('_class_name', 'a scheduler')} "
                       f"config; variance_type={variance}"
                       + ("; sampling-time settings not used by scoreflow: " + ", ".join(notes) if notes else ""),
    }

    ab = diffusers_alphas_cumprod(cfg)
    if not args.random_init:
        try:  # cross-check our reading of the config with diffusers' own schedule
            import diffusers
            sched = diffusers.DDPMScheduler.from_config(cfg)
            theirs = sched.alphas_cumprod.double().numpy()
            diff = np.abs(theirs[:-1] - ab[:-1]).max()
            if diff > 1e-5:
                sx.die(f"the schedule read from the scheduler config differs from diffusers' DDPMScheduler "
                       f"(max |alphas_cumprod difference| {diff:.3g})")
        except (ImportError, ValueError):
            pass
    n = len(ab)
    steps = [n // 10, n // 2, (9 * n) // 10]
    sigmas = [float(np.sqrt((1 - ab[k]) / ab[k])) for k in steps]
    step_of = dict(zip(sigmas, steps))
    pred = cfg.get("prediction_type", "epsilon")
    wrapper = Exported(unet, shape[0], num_classes > 0).eval()

    def reference(x, sigma, labels):
        """The original module at integer timestep k, converted as diffusers' schedulers do."""
        k = step_of[sigma]
        a = float(ab[k])
        x_t = (math.sqrt(a) * x.double()).float()
        t = torch.full((x.shape[0],), k, dtype=torch.long)
        f = wrapper.raw(x_t, t, labels)[:, : shape[0]].double()
        x_t = x_t.double()
        if pred == "epsilon":
            return (x_t - math.sqrt(1 - a) * f) / math.sqrt(a)
        if pred == "v_prediction":
            return math.sqrt(a) * x_t - math.sqrt(1 - a) * f
        return f

    want = 2 * shape[0] if learned else shape[0]
    sx.export(args.out, wrapper, meta, reference, sigmas, want,
              "out_channels vs variance_type " + str(variance), ref_path=args.ref)


if __name__ == "__main__":
    main()
