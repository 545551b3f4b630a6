#!/usr/bin/env python3
"""Exports latent diffusion networks as scoreflow models: a diffusers UNet2DConditionModel with its
AutoencoderKL (Stable Diffusion 1.x/2.x layout), or a DiT-style class-conditional latent transformer
(Peebles & Xie 2023) with learned-sigma output, optionally with an AutoencoderKL as its decoder.

    Stable Diffusion 1.x/2.x (a machine with diffusers; PIPE is a pipeline folder, e.g. a snapshot of
    stable-diffusion-v1-5 with unet/, vae/, scheduler/):
        python3 scripts/export_latent.py sd --pipeline PIPE --out sd15.pt
        python3 scripts/encode_prompts.py --pipeline PIPE --prompts prompts.txt --out prompts.npz --uncond-out uncond.npz
        scoreflow sample --model sd15.pt --cond prompts.npz --uncond uncond.npz --guidance 7.5 --seeds 0-3 --out sd.png
    DiT (a checkout of facebookresearch/DiT on PYTHONPATH or --code-dir; its checkpoint; a VAE folder
    such as sd-vae-ft-ema for the decoder):
        python3 scripts/export_latent.py dit --code-dir DiT --arch DiT-XL/2 --checkpoint DiT-XL-2-256x256.pt \\
            --image-size 256 --vae sd-vae-ft-ema --out dit256.pt
        scoreflow sample --model dit256.pt --class 207 --guidance 4 --seeds 0-7 --out dit.png
    Stand-ins with the real classes' interfaces (tests; nothing but torch needed):
        /usr/bin/python3 scripts/export_latent.py sd --random-init --out sd_standin.pt
        /usr/bin/python3 scripts/export_latent.py dit --random-init --out dit_standin.pt

sd: the scheduler config gives the schedule (scaled_linear betas 0.00085..0.012 over 1000 steps for
SD 1.x/2.x) and the prediction (epsilon: SD 1.x, 2.x-base; v_prediction: SD 2.x 768-v); the time input
is the discrete timestep index. steps_offset, timestep_spacing and the like only choose sampling
timesteps and are noted in the description (scoreflow picks its own grid). The UNet's
encoder_hidden_states become the condition `context` [77, cross_attention_dim] (the CLIP text
encoder's last hidden state; scripts/encode_prompts.py writes it); the unconditional row is the empty
prompt's encoding: give it with --uncond FILE.npz to store it in the archive ("uncond": "stored"),
else pass scoreflow --uncond at sampling time. The VAE becomes decode(z) = vae.decode(z).sample and
encode(x) = vae.encode(x).latent_dist.mean * scaling_factor; the metadata's decoder.scale is the
VAE's scaling_factor (0.18215 for SD 1.x/2.x).

dit: DiT's forward(x, t, y) returns [eps, v] (2C channels with learn_sigma); the exported forward
returns eps (the first C channels). The schedule is guided-diffusion's linear 1e-4..0.02 over 1000
steps (DiT's create_diffusion default); labels are int64, and label num_classes -- the row DiT's
LabelEmbedder adds for classifier-free guidance -- is scoreflow's unconditional label. timm's fused
attention (F.scaled_dot_product_attention, which LibTorch 1.13 lacks) is switched off before tracing.

After writing, the archive is reloaded: scoreflow's D(x, sigma) -- computed from the metadata as
models/torchscript_model.cpp computes it -- must match the original module in its own convention
at three timesteps, and decode/encode must match the VAE (relative 1e-4). Any failure deletes the file
and exits with one error: line.
"""
import argparse
import json
import math
import os
import sys
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scoreflow_export as sx  # noqa: E402

NOTED = ("timestep_spacing", "steps_offset", "clip_sample", "set_alpha_to_one", "skip_prk_steps", "thresholding")
PREDICTIONS = {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}


# ---------------------------------------------------------------- stand-ins with the real interfaces

def attention(q, k, v, heads: int):
    """Multi-head attention [B, N, C] x [B, M, C] with explicit matmul/softmax."""
    b, n, c = q.shape
    m, d = k.shape[1], c // heads
    q = q.reshape(b, n, heads, d).transpose(1, 2)
    k = k.reshape(b, m, heads, d).transpose(1, 2)
    v = v.reshape(b, m, heads, d).transpose(1, 2)
    w = torch.softmax(torch.matmul(q, k.transpose(2, 3)) * d ** -0.5, dim=-1)
    return torch.matmul(w, v).transpose(1, 2).reshape(b, n, c)


class CrossAttention(nn.Module):
    def __init__(self, ch: int, ctx_dim: int, heads: int = 2):
        super().__init__()
        self.norm = nn.GroupNorm(4, ch)
        self.to_q, self.to_k, self.to_v = nn.Linear(ch, ch), nn.Linear(ctx_dim, ch), nn.Linear(ctx_dim, ch)
        self.to_out = nn.Linear(ch, ch)
        self.heads = heads

    def forward(self, x, ctx):
        b, c, h, w = x.shape
        t = self.norm(x).flatten(2).transpose(1, 2)
        o = attention(self.to_q(t), self.to_k(ctx), self.to_v(ctx), self.heads)
        return x + self.to_out(o).transpose(1, 2).reshape(b, c, h, w)


class StandInUNet2DConditionModel(nn.Module):
    """A tiny network with diffusers.UNet2DConditionModel's interface: `config` (sample_size,
    in_channels, out_channels, cross_attention_dim), flip_sin_to_cos timestep projection -> MLP,
    cross-attention to encoder_hidden_states, forward(sample, timestep, encoder_hidden_states,
    return_dict=True) -> .sample."""

    def __init__(self, sample_size=8, in_channels=4, out_channels=4, cross_attention_dim=32, ch=16):
        super().__init__()
        self.config = SimpleNamespace(sample_size=sample_size, in_channels=in_channels, out_channels=out_channels,
                                      cross_attention_dim=cross_attention_dim, _class_name="UNet2DConditionModel")
        self.ch = ch
        self.time_embedding = nn.Sequential(nn.Linear(ch, 2 * ch), nn.SiLU(), nn.Linear(2 * ch, 2 * ch))
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        self.block = sx.ResBlock(ch, ch, 2 * ch)
        self.attn = CrossAttention(ch, cross_attention_dim)
        self.block2 = sx.ResBlock(ch, ch, 2 * ch)
        self.conv_out = nn.Conv2d(ch, out_channels, 3, padding=1)

    def forward(self, sample, timestep, encoder_hidden_states, return_dict=True):
        if not torch.is_tensor(timestep):
            timestep = torch.tensor([timestep], dtype=torch.long)
        if timestep.dim() == 0:
            timestep = timestep[None]
        timestep = timestep.expand(sample.shape[0])
        emb = self.time_embedding(sx.sinusoidal(timestep, self.ch, flip_sin_to_cos=True, shift=0.0))
        h = self.block(self.conv_in(sample), emb)
        h = self.block2(self.attn(h, encoder_hidden_states), emb)
        out = self.conv_out(F.silu(h))
        return SimpleNamespace(sample=out) if return_dict else (out,)


class StandInAutoencoderKL(nn.Module):
    """A tiny network with diffusers.AutoencoderKL's interface: `config` (in_channels, latent_channels,
    scaling_factor, shift_factor), encode(x).latent_dist.{mean, mode(), sample()}, decode(z).sample;
    8x spatial reduction."""

    def __init__(self, in_channels=3, latent_channels=4, scaling_factor=0.18215, ch=16):
        super().__init__()
        self.config = SimpleNamespace(in_channels=in_channels, latent_channels=latent_channels,
                                      scaling_factor=scaling_factor, shift_factor=None, _class_name="AutoencoderKL")
        self.encoder = nn.Sequential(nn.Conv2d(in_channels, ch, 3, stride=2, padding=1), nn.SiLU(),
                                     nn.Conv2d(ch, ch, 3, stride=2, padding=1), nn.SiLU(),
                                     nn.Conv2d(ch, 2 * latent_channels, 3, stride=2, padding=1))
        self.decoder = nn.Sequential(nn.Conv2d(latent_channels, ch, 3, padding=1), nn.SiLU(),
                                     nn.Upsample(scale_factor=8.0, mode="nearest"),
                                     nn.Conv2d(ch, in_channels, 3, padding=1))

    def encode(self, x, return_dict=True):
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        std = torch.exp(0.5 * logvar.clamp(-30, 20))
        dist = SimpleNamespace(mean=mean, std=std, mode=lambda: mean,
                               sample=lambda generator=None: mean + std * torch.randn_like(mean))
        return SimpleNamespace(latent_dist=dist) if return_dict else (dist,)

    def decode(self, z, return_dict=True):
        out = self.decoder(z)
        return SimpleNamespace(sample=out) if return_dict else (out,)


class StandInDiT(nn.Module):
    """A tiny network with DiT's interface (models.py of facebookresearch/DiT): input_size, in_channels,
    learn_sigma (out_channels = 2 in_channels), patch_size, num_classes; x_embedder (patchify conv),
    t_embedder (frequency embedding [cos, sin] -> MLP), y_embedder with a null row for dropped labels,
    adaLN-Zero transformer blocks, forward(x, t, y) -> [B, out_channels, H, W]."""

    def __init__(self, input_size=8, patch_size=2, in_channels=4, hidden_size=32, depth=2, num_heads=2,
                 num_classes=10, learn_sigma=True, class_dropout_prob=0.1):
        super().__init__()
        self.input_size, self.patch_size, self.in_channels = input_size, patch_size, in_channels
        self.out_channels = 2 * in_channels if learn_sigma else in_channels
        self.learn_sigma, self.num_classes, self.num_heads = learn_sigma, num_classes, num_heads
        self.hidden_size = hidden_size
        self.x_embedder = nn.Conv2d(in_channels, hidden_size, patch_size, stride=patch_size)
        self.t_mlp = nn.Sequential(nn.Linear(64, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size))
        self.y_table = nn.Embedding(num_classes + int(class_dropout_prob > 0), hidden_size)
        n = (input_size // patch_size) ** 2
        self.pos_embed = nn.Parameter(torch.randn(1, n, hidden_size) * 0.02, requires_grad=False)
        self.blocks = nn.ModuleList([nn.ModuleDict(dict(
            ada=nn.Linear(hidden_size, 6 * hidden_size), qkv=nn.Linear(hidden_size, 3 * hidden_size),
            proj=nn.Linear(hidden_size, hidden_size), fc1=nn.Linear(hidden_size, 4 * hidden_size),
            fc2=nn.Linear(4 * hidden_size, hidden_size))) for _ in range(depth)])
        self.final_ada = nn.Linear(hidden_size, 2 * hidden_size)
        self.final = nn.Linear(hidden_size, patch_size * patch_size * self.out_channels)

    @staticmethod
    def timestep_embedding(t, dim, max_period=10000):
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        args = t[:, None].float() * freqs[None]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)

    def forward(self, x, t, y):
        b, c, hh, ww = x.shape
        p, hs = self.patch_size, self.hidden_size
        h = self.x_embedder(x).flatten(2).transpose(1, 2) + self.pos_embed
        cond = self.t_mlp(self.timestep_embedding(t, 64)) + self.y_table(y)
        mod = lambda v, shift, scale: v * (1 + scale[:, None]) + shift[:, None]  # noqa: E731
        for blk in self.blocks:
            s1, c1, g1, s2, c2, g2 = blk["ada"](F.silu(cond)).chunk(6, dim=1)
            a = mod(F.layer_norm(h, (hs,), eps=1e-6), s1, c1)
            q, k, v = blk["qkv"](a).chunk(3, dim=-1)
            h = h + g1[:, None] * blk["proj"](attention(q, k, v, self.num_heads))
            m = mod(F.layer_norm(h, (hs,), eps=1e-6), s2, c2)
            h = h + g2[:, None] * blk["fc2"](F.gelu(blk["fc1"](m), approximate="tanh"))
        sh, sc = self.final_ada(F.silu(cond)).chunk(2, dim=1)
        h = self.final(mod(F.layer_norm(h, (hs,), eps=1e-6), sh, sc))  # [B, N, p*p*C']
        gh, gw = hh // p, ww // p
        h = h.reshape(b, gh, gw, p, p, self.out_channels).permute(0, 5, 1, 3, 2, 4)
        return h.reshape(b, self.out_channels, hh, ww)


# ---------------------------------------------------------------- the exported wrappers

class SDExported(nn.Module):
    def __init__(self, unet, vae, scale: float, shift: float, uncond=None):
        super().__init__()
        self.unet, self.vae, self.scale, self.shift = unet, vae, scale, shift
        if uncond is not None:
            self.register_buffer("uncond_context", uncond)

    def forward(self, x, t, context):
        out = self.unet(x, t, encoder_hidden_states=context, return_dict=False)
        return out[0] if isinstance(out, (tuple, list)) else out.sample

    def decode(self, z):
        out = self.vae.decode(z, return_dict=False)
        return out[0] if isinstance(out, (tuple, list)) else out.sample

    def encode(self, x):
        out = self.vae.encode(x, return_dict=False)
        dist = out[0] if isinstance(out, (tuple, list)) else out.latent_dist
        return (dist.mean - self.shift) * self.scale


class DiTExported(nn.Module):
    def __init__(self, dit, channels: int, vae=None, scale: float = 1.0, shift: float = 0.0):
        super().__init__()
        self.dit, self.channels, self.vae, self.scale, self.shift = dit, channels, vae, scale, shift

    def forward(self, x, t, y):
        return self.dit(x, t, y)[:, : self.channels]

    def decode(self, z):
        return SDExported.decode(self, z)

    def encode(self, x):
        return SDExported.encode(self, x)


# ---------------------------------------------------------------- loading

def read_json(path, what):
    sx.require_file(path, what)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        sx.die(f"{what} '{path}' is not valid JSON: {e}")


def cfg_get(cfg, key, default=None):
    return cfg.get(key, default) if isinstance(cfg, dict) else getattr(cfg, key, default)


def need_diffusers(what):
    try:
        import diffusers
        return diffusers
    except ImportError:
        sx.die(f"{what} needs the diffusers package (pip install diffusers transformers); "
               "--random-init exports the built-in stand-in without it")


def load_vae(path):
    diffusers = need_diffusers("--vae / --pipeline")
    sx.require_file(path, "the VAE folder")
    vae = diffusers.AutoencoderKL.from_pretrained(path).float().eval()
    if hasattr(vae, "set_default_attn_processor"):  # bmm/softmax attention, not PyTorch 2's fused op
        vae.set_default_attn_processor()
    return vae


def vae_scale_shift(vae):
    scale = cfg_get(vae.config, "scaling_factor", 0.18215)
    shift = cfg_get(vae.config, "shift_factor", None)
    return float(scale), float(shift or 0.0)


def schedule_from_config(cfg):
    name = cfg.get("beta_schedule", "linear")
    if cfg.get("trained_betas") is not None or name not in ("linear", "scaled_linear"):
        sx.die(f"scheduler config: beta_schedule '{name}' is not the Stable Diffusion layout (linear or "
               "scaled_linear); export the UNet with scripts/export_diffusers.py's schedule handling")
    sch = {"type": "vp_discrete", "betas": name, "beta_start": float(cfg.get("beta_start", 0.00085)),
           "beta_end": float(cfg.get("beta_end", 0.012)), "num_train_steps": int(cfg.get("num_train_timesteps", 1000))}
    if cfg.get("rescale_betas_zero_snr", False):
        sch["rescale_zero_terminal_snr"] = True
    return sch


# ---------------------------------------------------------------- trace, save, verify

def trace_save(wrapper, meta, path, methods):
    """methods: name -> example inputs. Traces on CPU fp32, refuses ops LibTorch 1.13 lacks, saves."""
    wrapper.eval()
    with torch.no_grad():
        traced = torch.jit.trace_module(wrapper, methods, check_trace=False)
    newer = sorted({n.kind() for name in methods for n in getattr(traced, name).inlined_graph.nodes()}
                   & sx.OPS_NEWER_THAN_1_13)
    if newer:
        raise sx.CheckFailed(f"ops: the traced network uses {', '.join(newer)}, which LibTorch 1.13 does not have "
                             "(switch its attention to the plain implementation)")
    torch.jit.save(traced, path, _extra_files={"scoreflow.json": json.dumps(meta)})


def scoreflow_D(m, meta, x, sigma, cond):
    """D the way scoreflow computes it: network input alpha*x, the metadata's time input, then `cond`
    (labels or the condition tensors) appended."""
    alpha, t = sx.network_inputs(meta, sigma)
    tt = torch.full((x.shape[0],), t, dtype=torch.float32)
    f = m(x * alpha, tt, *cond)[:, : x.shape[1]].double()
    xd = x.double()
    if meta["prediction"] == "eps":
        return xd - sigma * f
    if meta["prediction"] == "v":
        return alpha * alpha * xd - alpha * sigma * f
    return f


def verify(path, meta, ab, steps, cond, reference, vae_ref=None, image_shape=None):
    files = {"scoreflow.json": ""}
    m = torch.jit.load(path, map_location="cpu", _extra_files=files)
    if json.loads(files["scoreflow.json"]) != meta:
        raise sx.CheckFailed(f"metadata: stored {files['scoreflow.json']} differs from {meta}")
    if meta.get("uncond") == "stored":
        name = meta["conditions"][0]["name"]
        if not hasattr(m, "uncond_" + name):
            raise sx.CheckFailed(f"uncond: metadata says stored but the archive has no attribute uncond_{name}")
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for k in steps:
            sigma = float(math.sqrt((1 - ab[k]) / ab[k]))
            x = 0.5 * torch.randn(3, *meta["shape"], generator=g) + sigma * torch.randn(3, *meta["shape"], generator=g)
            got, want = scoreflow_D(m, meta, x, sigma, cond), reference(x, k, cond).double()
            err = (got - want).abs().max().item()
            if not err <= 1e-4 * max(1.0, want.abs().max().item()):
                raise sx.CheckFailed(f"D(x, sigma={sigma:.6g}) of the reloaded file differs from the original module "
                                     f"by {err:.3g} (prediction '{meta['prediction']}')")
        if vae_ref is not None:
            z = torch.randn(3, *meta["shape"], generator=g)
            got, want = m.decode(z), vae_ref[0](z)
            err = (got - want).abs().max().item()
            if list(got.shape[1:]) != list(image_shape) or err > 1e-4 * max(1.0, want.abs().max().item()):
                raise sx.CheckFailed(f"decoder: reloaded decode gives {list(got.shape)} (expected [3] + {image_shape}), "
                                     f"max |difference| {err:.3g}")
            img = torch.rand(3, *image_shape, generator=g) * 2 - 1
            got, want = m.encode(img), vae_ref[1](img)
            err = (got - want).abs().max().item()
            if list(got.shape[1:]) != list(meta["shape"]) or err > 1e-4 * max(1.0, want.abs().max().item()):
                raise sx.CheckFailed(f"encoder: reloaded encode gives {list(got.shape)} (metadata shape "
                                     f"{meta['shape']}), max |difference| {err:.3g}")


def finish(path, wrapper, meta, methods, ab, cond, reference, vae_ref=None, image_shape=None, buffers=None):
    tmp = path + ".tmp"
    try:
        trace_save(wrapper, meta, tmp, methods)
        verify(tmp, meta, ab, [len(ab) // 10, len(ab) // 2, (9 * len(ab)) // 10], cond, reference, vae_ref, image_shape)
    except sx.CheckFailed as e:
        sx.fail_export(path, str(e))
    except Exception as e:  # noqa: BLE001
        sx.fail_export(path, f"tracing failed: {str(e).strip().splitlines()[0][:300]}")
    os.replace(tmp, path)
    print(f"exported {path} ({os.path.getsize(path) / 2**20:.2f} MiB); self-check passed "
          f"(D parity at 3 timesteps{', decode/encode parity' if vae_ref else ''})")
    print(json.dumps(meta))


def linear_ab(b0, b1, n, scaled):
    i = np.arange(n, dtype=np.float64)
    b = (math.sqrt(b0) + (math.sqrt(b1) - math.sqrt(b0)) * i / (n - 1)) ** 2 if scaled else b0 + (b1 - b0) * i / (n - 1)
    return np.cumprod(1 - b)


# ---------------------------------------------------------------- sd

def export_sd(args):
    if args.random_init:
        torch.manual_seed(args.seed)
        size, ctx_len, ctx_dim = args.sample_size, 77 if args.context_len is None else args.context_len, args.context_dim
        unet = StandInUNet2DConditionModel(sample_size=size, cross_attention_dim=ctx_dim).eval()
        vae = StandInAutoencoderKL().eval()
        cfg = {"_class_name": "PNDMScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085,
               "beta_end": 0.012, "num_train_timesteps": 1000, "prediction_type": args.prediction,
               "steps_offset": 1, "set_alpha_to_one": False, "skip_prk_steps": True}
    else:
        if not args.pipeline:
            sx.die("--pipeline DIR is required (a Stable Diffusion folder with unet/, vae/, scheduler/), "
                   "or --random-init for the stand-in")
        diffusers = need_diffusers("--pipeline")
        unet_dir = os.path.join(args.pipeline, "unet")
        sx.require_file(unet_dir, "the pipeline's unet/ folder")
        unet = diffusers.UNet2DConditionModel.from_pretrained(unet_dir).float().eval()
        if hasattr(unet, "set_default_attn_processor"):
            unet.set_default_attn_processor()
        if cfg_get(unet.config, "addition_embed_type"):
            sx.die(f"the UNet has addition_embed_type '{cfg_get(unet.config, 'addition_embed_type')}' (SDXL-style "
                   "added conditions: pooled text embeddings and time ids); this script exports the SD 1.x/2.x layout")
        vae = load_vae(os.path.join(args.pipeline, "vae"))
        cfg = read_json(args.scheduler_config or os.path.join(args.pipeline, "scheduler", "scheduler_config.json"),
                        "--scheduler-config")
        size = cfg_get(unet.config, "sample_size")
        ctx_len = 77 if args.context_len is None else args.context_len
        ctx_dim = cfg_get(unet.config, "cross_attention_dim")
        if isinstance(ctx_dim, (list, tuple)):
            ctx_dim = ctx_dim[0]
    pred = cfg.get("prediction_type", "epsilon")
    if pred not in PREDICTIONS:
        sx.die(f"scheduler config: unknown prediction_type '{pred}'; valid: {', '.join(PREDICTIONS)}")
    sch = schedule_from_config(cfg)
    c = int(cfg_get(unet.config, "in_channels"))
    hw = [size, size] if isinstance(size, int) else list(size)
    shape = [c] + [int(v) for v in hw]
    scale, shift = vae_scale_shift(vae)
    image_channels = int(cfg_get(vae.config, "in_channels", 3))
    image_shape = [image_channels, 8 * shape[1], 8 * shape[2]]
    uncond = None
    if args.uncond:
        sx.require_file(args.uncond, "--uncond")
        with np.load(args.uncond) as z:
            if "context" not in z.files:
                sx.die(f"--uncond '{args.uncond}' has no 'context' array (scripts/encode_prompts.py writes one)")
            uncond = torch.from_numpy(np.asarray(z["context"], dtype=np.float32)).reshape(-1, ctx_len, ctx_dim)[0]
    notes = [f"{k}={cfg[k]}" for k in NOTED if k in cfg]
    meta = {
        "prediction": PREDICTIONS[pred], "schedule": sch, "time_input": "index", "shape": shape,
        "data_range": [-4, 4], "num_classes": 0, "head": "none",
        "name": "diffusers UNet2DConditionModel + AutoencoderKL" + (" (random stand-in)" if args.random_init else ""),
        "description": "exported by scripts/export_latent.py sd" + ("; sampling-time settings not used by scoreflow: "
                                                                     + ", ".join(notes) if notes else ""),
        "conditions": [{"name": "context", "shape": [ctx_len, int(ctx_dim)]}],
        "decoder": {"method": "decode", "scale": scale, "shift": shift, "image_shape": image_shape,
                    "image_range": [-1, 1]},
        "encoder": {"method": "encode"},
    }
    if uncond is not None:
        meta["uncond"] = "stored"
    wrapper = SDExported(unet, vae, scale, shift, uncond).eval()
    g = torch.Generator().manual_seed(2)
    ctx = torch.randn(2, ctx_len, ctx_dim, generator=g)
    methods = {"forward": (torch.randn(2, *shape, generator=g), torch.full((2,), 500.0), ctx),
               "decode": (torch.randn(2, *shape, generator=g),),
               "encode": (torch.rand(2, *image_shape, generator=g) * 2 - 1,)}
    ab = linear_ab(sch["beta_start"], sch["beta_end"], sch["num_train_steps"], sch["betas"] == "scaled_linear")
    if sch.get("rescale_zero_terminal_snr"):
        ab = sx.alphas_cumprod(sch)

    def reference(x, k, cond):
        """diffusers' convention: x_t = sqrt(ab) x0 + sqrt(1 - ab) eps at integer timestep k."""
        a = float(ab[k])
        x_t = (math.sqrt(a) * x.double()).float()
        f = wrapper(x_t, torch.full((x.shape[0],), k, dtype=torch.long), *cond).double()
        if pred == "epsilon":
            return (x_t.double() - math.sqrt(1 - a) * f) / math.sqrt(a)
        if pred == "v_prediction":
            return math.sqrt(a) * x_t.double() - math.sqrt(1 - a) * f
        return f

    cond = (torch.randn(3, ctx_len, ctx_dim, generator=torch.Generator().manual_seed(4)),)
    vae_ref = (lambda z: wrapper.decode(z), lambda x: wrapper.encode(x))
    finish(args.out, wrapper, meta, methods, ab, cond, reference, vae_ref, image_shape)


# ---------------------------------------------------------------- dit

def disable_fused_attention(module):
    """timm's Attention uses F.scaled_dot_product_attention when fused_attn is set; LibTorch 1.13 lacks it."""
    for m in module.modules():
        if hasattr(m, "fused_attn"):
            m.fused_attn = False


def export_dit(args):
    if args.random_init:
        torch.manual_seed(args.seed)
        dit = StandInDiT(input_size=args.sample_size, num_classes=args.num_classes or 10).eval()
        vae = StandInAutoencoderKL().eval()
        num_classes = dit.num_classes
    else:
        if args.code_dir:
            sys.path.insert(0, args.code_dir)
        try:
            import models as dit_models  # facebookresearch/DiT's models.py
        except ImportError as e:
            sx.die(f"cannot import DiT's models.py ({e}); give --code-dir DiT (a checkout of facebookresearch/DiT)")
        if args.arch not in getattr(dit_models, "DiT_models", {}):
            sx.die(f"--arch '{args.arch}' is not in DiT_models; valid: {', '.join(getattr(dit_models, 'DiT_models', {}))}")
        latent = args.image_size // 8
        dit = dit_models.DiT_models[args.arch](input_size=latent, num_classes=args.num_classes or 1000)
        sx.require_file(args.checkpoint, "--checkpoint")
        state = sx.load_state_dict(args.checkpoint)
        sx.load_weights(dit, state, args.checkpoint)
        dit.eval()
        num_classes = dit.y_embedder.num_classes
        vae = load_vae(args.vae) if args.vae else None
    disable_fused_attention(dit)
    c = dit.in_channels
    n = dit.input_size if isinstance(dit.input_size, int) else dit.input_size[0]
    shape = [c, n, n]
    learned = dit.out_channels == 2 * c
    meta = {
        "prediction": "eps",
        "schedule": {"type": "vp_discrete", "betas": "linear", "beta_start": 1e-4, "beta_end": 0.02, "num_train_steps": 1000},
        "time_input": "index", "shape": shape, "data_range": [-4, 4], "num_classes": int(num_classes), "head": "none",
        "name": "DiT" + (" (random stand-in)" if args.random_init else f" {args.arch}"),
        "description": "exported by scripts/export_latent.py dit; "
                       + ("learned sigma: forward returns the first C of 2C output channels" if learned else "fixed sigma"),
    }
    scale = shift = None
    image_shape = None
    if vae is not None:
        scale, shift = vae_scale_shift(vae)
        image_shape = [int(cfg_get(vae.config, "in_channels", 3)), 8 * n, 8 * n]
        meta["decoder"] = {"method": "decode", "scale": scale, "shift": shift, "image_shape": image_shape,
                           "image_range": [-1, 1]}
        meta["encoder"] = {"method": "encode"}
    wrapper = DiTExported(dit, c, vae, scale or 1.0, shift or 0.0).eval()
    g = torch.Generator().manual_seed(2)
    y = torch.tensor([0, num_classes], dtype=torch.long)
    methods = {"forward": (torch.randn(2, *shape, generator=g), torch.full((2,), 500.0), y)}
    if vae is not None:
        methods["decode"] = (torch.randn(2, *shape, generator=g),)
        methods["encode"] = (torch.rand(2, *image_shape, generator=g) * 2 - 1,)
    with torch.no_grad():  # preflight: the learned-sigma split and the null label
        out = dit(methods["forward"][0], methods["forward"][1], y)
        if out.shape[1] not in (c, 2 * c):
            sx.fail_export(args.out, f"out_channels: DiT outputs {out.shape[1]} channels for {c} input channels")
    ab = linear_ab(1e-4, 0.02, 1000, False)

    def reference(x, k, cond):
        a = float(ab[k])
        x_t = (math.sqrt(a) * x.double()).float()
        eps = dit(x_t, torch.full((x.shape[0],), k, dtype=torch.long), *cond)[:, :c].double()
        return (x_t.double() - math.sqrt(1 - a) * eps) / math.sqrt(a)

    cond = (torch.tensor([1 % num_classes, num_classes - 1, num_classes], dtype=torch.long),)
    vae_ref = None if vae is None else (lambda z: wrapper.decode(z), lambda x: wrapper.encode(x))
    finish(args.out, wrapper, meta, methods, ab, cond, reference, vae_ref, image_shape)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="family", required=True)
    s = sub.add_parser("sd", help="diffusers UNet2DConditionModel + AutoencoderKL (SD 1.x/2.x)")
    s.add_argument("--pipeline", help="pipeline folder with unet/, vae/, scheduler/")
    s.add_argument("--scheduler-config", help="default: PIPELINE/scheduler/scheduler_config.json")
    s.add_argument("--uncond", help="npz with `context` of the empty prompt (encode_prompts.py --uncond-out): "
                                    "stored in the archive as the unconditional input")
    s.add_argument("--context-len", type=int, help="tokens of the text encoder's output (default 77)")
    s.add_argument("--prediction", choices=["epsilon", "v_prediction"], default="epsilon", help="stand-in only")
    s.add_argument("--context-dim", type=int, default=32, help="stand-in: cross_attention_dim")
    d = sub.add_parser("dit", help="DiT (facebookresearch/DiT) with learned sigma")
    d.add_argument("--code-dir", help="checkout of facebookresearch/DiT (for models.py)")
    d.add_argument("--arch", default="DiT-XL/2")
    d.add_argument("--checkpoint", help="DiT checkpoint (.pt state dict)")
    d.add_argument("--image-size", type=int, default=256, help="256 or 512")
    d.add_argument("--num-classes", type=int, help="default: 1000 (stand-in: 10)")
    d.add_argument("--vae", help="AutoencoderKL folder (e.g. sd-vae-ft-ema) to include as decode/encode")
    for q in (s, d):
        q.add_argument("--out", required=True, help="TorchScript archive to write")
        q.add_argument("--random-init", action="store_true", help="export the randomly initialised stand-in")
        q.add_argument("--sample-size", type=int, default=8, help="stand-in: latent size")
        q.add_argument("--seed", type=int, default=0, help="stand-in: initialisation seed")
    args = p.parse_args()
    if args.family == "sd":
        if args.context_len is None and args.random_init:
            args.context_len = 8
        export_sd(args)
    else:
        export_dit(args)


if __name__ == "__main__":
    main()
