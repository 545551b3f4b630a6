#!/usr/bin/env python3
"""Exports an improved/guided-diffusion U-Net (Nichol & Dhariwal 2021, Dhariwal & Nichol 2021) as a
scoreflow model.

    python3 scripts/export_guided.py --package guided_diffusion --checkpoint 64x64_diffusion.pt --out adm64.pt \\
        --attention_resolutions 32,16,8 --class_cond True --diffusion_steps 1000 --image_size 64 \\
        --learn_sigma True --noise_schedule cosine --num_channels 192 --num_head_channels 64 \\
        --num_res_blocks 3 --resblock_updown True --use_new_attention_order True --use_scale_shift_norm True

Everything after the script's own options is the repository's own MODEL_FLAGS/DIFFUSION_FLAGS,
parsed with its script_util defaults (the package must be importable: --code-dir or PYTHONPATH).
With learn_sigma the network outputs 2C channels, [eps, v] with v the log-variance interpolation;
the exported forward returns eps (scoreflow's prediction) and --variance-method also exports
v as the method `variance(x, t[, y])`. The schedule is linear or cosine with diffusion_steps
steps; timestep_respacing only chooses sampling steps and is noted in the description (scoreflow
picks its own grid); rescale_timesteps (improved-diffusion's default) is folded into the exported
forward, whose t is always the discrete index 0..N-1. class_cond models take int64 labels y;
label num_classes (scoreflow's unconditional label) leaves the class embedding out.

--random-init exports a randomly initialised stand-in with UNetModel's call signature
(forward(x, timesteps, y=None)), configured by the same flags, for tests. After writing, the file
is reloaded and scoreflow's D(x, sigma) is compared with the original module at three timesteps.
"""
import argparse
import importlib
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scoreflow_export as sx  # noqa: E402

STAND_IN_DEFAULTS = dict(image_size=16, num_channels=16, learn_sigma=False, class_cond=False, num_classes=10,
                         diffusion_steps=1000, noise_schedule="linear", timestep_respacing="", use_kl=False,
                         predict_xstart=False, rescale_timesteps=False, rescale_learned_sigmas=False,
                         use_fp16=False)


class StandInUNetModel(torch.nn.Module):
    """A tiny network with guided-diffusion's UNetModel interface: in_channels, out_channels,
    num_classes (None: unconditional), label_emb, time_embed on timestep_embedding(t) (cos, sin)."""

    def __init__(self, image_size, in_channels, model_channels, out_channels, num_classes=None):
        super().__init__()
        self.image_size, self.in_channels, self.out_channels = image_size, in_channels, out_channels
        self.model_channels, self.num_classes = model_channels, num_classes
        emb = 2 * model_channels
        self.time_embed = torch.nn.Sequential(torch.nn.Linear(model_channels, emb), torch.nn.SiLU(),
                                              torch.nn.Linear(emb, emb))
        if num_classes is not None:
            self.label_emb = torch.nn.Embedding(num_classes, emb)
        self.core = sx.TinyUNetCore(in_channels, out_channels, model_channels, emb)

    def forward(self, x, timesteps, y=None):
        assert (y is not None) == (self.num_classes is not None), "must specify y if and only if class-conditional"
        emb = self.time_embed(sx.sinusoidal(timesteps, self.model_channels, flip_sin_to_cos=True))
        if self.num_classes is not None:
            emb = emb + self.label_emb(y)
        return self.core(x, emb)


class Exported(torch.nn.Module):
    """forward(x_t, t[, y]) -> eps, the first C channels of model(x_t, t * time_scale[, y]);
    variance(...) -> the learned-variance channels v (learn_sigma models)."""

    def __init__(self, model, channels: int, conditional: bool, time_scale: float):
        super().__init__()
        self.model, self.channels, self.conditional, self.time_scale = model, channels, conditional, time_scale

    def raw(self, x, t, y=None):
        t = t * self.time_scale if self.time_scale != 1.0 else t
        return self.model(x, t, y) if self.conditional else self.model(x, t)

    def forward(self, x, t, y=None):
        return self.raw(x, t, y)[:, : self.channels]

    def variance(self, x, t, y=None):
        return self.raw(x, t, y)[:, self.channels:]


def str2bool(v):
    if isinstance(v, bool):
        return v
    if v.lower() in ("yes", "true", "t", "y", "1"):
        return True
    if v.lower() in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(f"boolean value expected, got '{v}'")


def parse_model_flags(defaults: dict, flags):
    p = argparse.ArgumentParser(prog="model flags", add_help=False)
    for k, v in defaults.items():
        t = str2bool if isinstance(v, bool) else (str if v is None else type(v))
        p.add_argument(f"--{k}", default=v, type=t)
    try:
        ns, unknown = p.parse_known_args(flags)
    except SystemExit:
        sx.die("bad model flag value (see the error above)")
    if unknown:
        sx.die(f"unknown option(s) {' '.join(unknown)}; model flags valid here: "
               + ", ".join("--" + k for k in defaults))
    return vars(ns)


def betas(noise_schedule: str, n: int) -> np.ndarray:
    """improved-diffusion's get_named_beta_schedule, float64."""
    if noise_schedule == "linear":
        scale = 1000 / n
        return np.linspace(scale * 0.0001, scale * 0.02, n, dtype=np.float64)
    if noise_schedule == "cosine":
        ab = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
        return np.array([min(1 - ab((i + 1) / n) / ab(i / n), 0.999) for i in range(n)])
    sx.die(f"noise_schedule '{noise_schedule}' is unknown; valid: linear, cosine")


def load_model(args, flags):
    if args.random_init:
        cfg = parse_model_flags(STAND_IN_DEFAULTS, flags)
        torch.manual_seed(args.seed)
        learned = cfg["learn_sigma"] if args.stand_in_learned_sigma is None else str2bool(args.stand_in_learned_sigma)
        c = args.stand_in_channels
        model = StandInUNetModel(cfg["image_size"], c, cfg["num_channels"], 2 * c if learned else c,
                                 cfg["num_classes"] if cfg["class_cond"] else None)
        return model.eval(), cfg
    if not args.package or not args.checkpoint:
        sx.die("give --package guided_diffusion|improved_diffusion and --checkpoint FILE.pt "
               "(or --random-init for the stand-in)")
    sx.require_file(args.checkpoint, "--checkpoint")
    if args.code_dir:
        sys.path.insert(0, args.code_dir)
    try:
        su = importlib.import_module(args.package + ".script_util")
    except ImportError as e:
        sx.die(f"cannot import {args.package}.script_util ({e}); give the repository with --code-dir PATH")
    defaults = su.model_and_diffusion_defaults()
    cfg = parse_model_flags(defaults, flags)
    if cfg.get("use_fp16"):
        cfg["use_fp16"] = False  # exported in fp32; scoreflow casts with --dtype
    if cfg.get("use_checkpoint"):
        cfg["use_checkpoint"] = False  # gradient checkpointing is a training-time Function
    model, _ = su.create_model_and_diffusion(**cfg)
    sx.load_weights(model, sx.load_state_dict(args.checkpoint), args.checkpoint)
    cfg.setdefault("num_classes", getattr(su, "NUM_CLASSES", 1000))
    return model.float().eval(), cfg


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--package", choices=["guided_diffusion", "improved_diffusion"],
                   help="the repository's package, for its script_util")
    p.add_argument("--code-dir", help="folder to put on sys.path first (a clone of the repository)")
    p.add_argument("--checkpoint", help="the model's state dict (.pt)")
    p.add_argument("--out", required=True, help="TorchScript archive to write")
    p.add_argument("--ref", help="also write x, sigma, labels, denoised (the reference D) as .npz")
    p.add_argument("--shape", help="C,H,W (default: in_channels, image_size)")
    p.add_argument("--data-range", default="-1,1", help="data range lo,hi (default -1,1)")
    p.add_argument("--variance-method", action="store_true",
                   help="learn_sigma models: also export variance(x, t[, y]) -> v channels")
    p.add_argument("--random-init", action="store_true", help="export the randomly initialised stand-in")
    p.add_argument("--stand-in-channels", type=int, default=3, help="stand-in: image channels")
    p.add_argument("--stand-in-learned-sigma", default=None,
                   help="stand-in: build it with 2C outputs (default: the learn_sigma flag)")
    p.add_argument("--seed", type=int, default=0, help="stand-in: initialisation seed")
    args, flags = p.parse_known_args()

    model, cfg = load_model(args, flags)
    n = int(cfg["diffusion_steps"])
    learned = bool(cfg["learn_sigma"])
    c = int(getattr(model, "in_channels", 3))
    size = int(cfg["image_size"])
    shape = sx.parse_ints(args.shape, "--shape", 3) if args.shape else [c, size, size]
    sx.check_spatial(args.out, shape, size, "image_size")
    num_classes = int(cfg["num_classes"]) if cfg["class_cond"] else 0
    arch_classes = getattr(model, "num_classes", None) or 0
    if num_classes != arch_classes:
        sx.fail_export(args.out, f"num_classes: class_cond {cfg['class_cond']} gives {num_classes} classes "
                                 f"but the network has num_classes {arch_classes or None}")
    if args.variance_method and not learned:
        sx.die("--variance-method needs a learn_sigma model")
    if num_classes and isinstance(getattr(model, "label_emb", None), torch.nn.Embedding):
        model.label_emb = sx.NullableEmbedding(model.label_emb)

    b = betas(cfg["noise_schedule"], n)
    if cfg["noise_schedule"] == "linear":
        schedule = {"type": "vp_discrete", "betas": "linear", "beta_start": 0.0001 * 1000 / n,
                    "beta_end": 0.02 * 1000 / n, "num_train_steps": n}
    else:
        schedule = {"type": "vp_discrete", "betas": "cosine", "num_train_steps": n}
    time_scale = 1000.0 / n if cfg.get("rescale_timesteps") else 1.0
    notes = [f"diffusion_steps={n}", f"learn_sigma={learned}", f"rescale_timesteps={bool(cfg.get('rescale_timesteps'))}"]
    if cfg.get("timestep_respacing"):
        notes.append(f"timestep_respacing={cfg['timestep_respacing']} (sampling only; not used by scoreflow)")
    if learned and args.variance_method:
        notes.append("variance(x, t[, y]) returns the learned log-variance interpolation v in [-1, 1]")
    meta = {
        "prediction": "x0" if cfg.get("predict_xstart") else "eps",
        "schedule": schedule,
        "time_input": "index",
        "shape": shape,
        "data_range": sx.parse_range(args.data_range),
        "num_classes": num_classes,
        "head": "none",
        "name": f"{args.package or 'guided-diffusion'} UNetModel" + (" (random stand-in)" if args.random_init else ""),
        "description": "exported by scripts/export_guided.py; " + ", ".join(notes),
    }
    wrapper = Exported(model, shape[0], num_classes > 0, time_scale).eval()

    ab = np.cumprod(1 - b)
    steps = [n // 10, n // 2, (9 * n) // 10]
    sigmas = [float(np.sqrt((1 - ab[k]) / ab[k])) for k in steps]
    step_of = dict(zip(sigmas, steps))

    def reference(x, sigma, labels):
        """The original model at integer step k, as GaussianDiffusion.p_mean_variance reads it."""
        k = step_of[sigma]
        a = float(ab[k])
        x_t = (math.sqrt(a) * x.double()).float()
        t = torch.full((x.shape[0],), k, dtype=torch.long)
        if time_scale != 1.0:  # respace.py's _WrappedModel with rescale_timesteps
            t = t.float() * time_scale
        out = model(x_t, t, labels) if num_classes else model(x_t, t)
        f = out[:, : shape[0]].double()
        if cfg.get("predict_xstart"):
            return f
        return math.sqrt(1 / a) * x_t.double() - math.sqrt(1 / a - 1) * f  # _predict_xstart_from_eps

    want = 2 * shape[0] if learned else shape[0]
    sx.export(args.out, wrapper, meta, reference, sigmas, want, f"learn_sigma {learned}", ref_path=args.ref,
              extra_methods=["variance"] if args.variance_method else None)


if __name__ == "__main__":
    main()
