#!/usr/bin/env python3
"""Trains scoreflow's conditional latent demo on Fashion-MNIST (32x32): a small VAE, a latent denoiser
conditioned through cross-attention on a caption's token embeddings, and a classifier with logits that
measures whether samples show the captioned class.

Stages, one command, one wall-clock budget (--minutes, everything included):
  1. VAE: 1x32x32 in [-1, 1] -> 4x8x8 latents (mean + log-variance, light KL), L1 + L2 reconstruction.
     The latent scale (1 / std of the encoded training set) is measured afterwards; shift is 0.
  2. Classifier: scripts/train_features.py's FeatureNet (conv/BN/ReLU, logits over the 10 classes).
  3. Latent denoiser: EDM preconditioning (Karras et al. 2022) with sigma_data = 1 on the scaled
     latents, log-normal sigma, so the exported forward(x, sigma, context) returns D(x, sigma) itself
     (scoreflow metadata: prediction x0, schedule edm, time_input sigma). A small U-Net on 8x8 and 4x4
     whose every block cross-attends to the caption: context [B, L=4, D=32], one fixed embedding per
     token (a seeded normal vector per word, plus a position vector), the empty caption (all padding)
     as the unconditional row, dropped in 10 % of training examples for classifier-free guidance.
  4. A quick look: Heun samples at guidance 1, 3, 5 decoded and classified (log + PNG grid).

Attention is written with matmul/softmax (no scaled_dot_product_attention) so that the TorchScript
written by scripts/export_fashion_ldm.py under Debian's torch 1.13 loads in LibTorch 1.13. Weights are
written as .npz of float32 arrays (fashion_ldm.npz: vae.*, unet.*, context_table; fashion_classifier.npz)
plus fashion_ldm.json (hyper-parameters, latent scale, captions, log), so any torch version reads them.

Data: --data DIR with fashion_train.npy + fashion_train_labels.npy (and optionally fashion_test*.npy),
as written by scripts/prepare_gpujob.sh (uint8 [N, 1, 32, 32], 0 = background), or a folder of
Fashion-MNIST idx.gz files (default: Debian's /usr/share/datasets/fashion-mnist).

    GPU, from the repository root after bash scripts/prepare_gpujob.sh (the shipped models/fashion_ldm.pt:
    154 s wall on one H200; the defaults, --minutes 6.5, train about twice as long):
        python3 scripts/train_fashion_ldm.py --data .gpujob --minutes 3 --vae-minutes 0.6 --clf-epochs 8 \
            --out $OUT/ldm   # (--bf16: autocast)
    CPU smoke run (seconds):
        /usr/bin/python3 scripts/train_fashion_ldm.py --smoke --out /tmp/ldm_smoke
"""
import argparse
import json
import math
import os
import sys
import time
import zlib
from typing import List

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fashion_data  # noqa: E402

CAPTIONS = ["a t-shirt", "a pair of trousers", "a pullover", "a dress", "a coat",
            "a sandal", "a shirt", "a sneaker", "a bag", "an ankle boot"]
TOKENS, TOKEN_DIM = 4, 32
VAE_ARCH = dict(ch=32, latent_ch=4, groups=8)
UNET_ARCH = dict(latent_ch=4, ch=40, ch_mult=[1, 2], num_res_blocks=2, heads=2, ctx_dim=TOKEN_DIM,
                 temb_dim=128, groups=8)
SIGMA_DATA = 1.0
P_MEAN, P_STD = -0.4, 1.2
COND_DROP = 0.1


# ---------------------------------------------------------------- captions -> token embeddings

def caption_tokens(caption: str) -> List[str]:
    words = caption.lower().split()
    if len(words) > TOKENS:
        raise ValueError(f"caption '{caption}' has more than {TOKENS} words")
    return words + ["<pad>"] * (TOKENS - len(words))


def word_vector(word: str) -> np.ndarray:
    """A fixed N(0, 1) vector per word, seeded by the word's CRC-32 (the same on every machine)."""
    rng = np.random.RandomState(zlib.crc32(word.encode()) & 0x7FFFFFFF)
    return rng.standard_normal(TOKEN_DIM)


def context_table() -> np.ndarray:
    """[11, L, D] float32: row i < 10 is caption i, row 10 the empty caption (the unconditional row).
    Each token is its word's vector plus a fixed vector for its position, scaled to about unit norm."""
    pos = np.stack([word_vector(f"<pos{i}>") for i in range(TOKENS)])
    rows = [np.stack([word_vector(w) for w in caption_tokens(c)]) + pos for c in CAPTIONS + [""]]
    return (np.stack(rows) / math.sqrt(2 * TOKEN_DIM)).astype(np.float32)


# ---------------------------------------------------------------- networks (scriptable in torch 1.13)

class Block(nn.Module):
    """GroupNorm-SiLU-conv twice with a skip; with emb_dim > 0 the embedding gives a scale and shift."""

    def __init__(self, cin: int, cout: int, groups: int, emb_dim: int = 0):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.has_emb = emb_dim > 0
        self.emb = nn.Linear(max(emb_dim, 1), 2 * cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.norm2(h)
        if self.has_emb:
            scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        return self.skip(x) + self.conv2(F.silu(h))


class VAE(nn.Module):
    """1x32x32 -> (mean, logvar) 4x8x8 -> 1x32x32. decode() returns images in about [-1, 1]."""

    def __init__(self, ch: int = 32, latent_ch: int = 4, groups: int = 8):
        super().__init__()
        c2 = 2 * ch
        self.enc_in = nn.Conv2d(1, ch, 3, padding=1)
        self.enc = nn.ModuleList([Block(ch, ch, groups), Block(ch, c2, groups), Block(c2, c2, groups)])
        self.down = nn.ModuleList([nn.Conv2d(ch, ch, 3, stride=2, padding=1),
                                   nn.Conv2d(c2, c2, 3, stride=2, padding=1)])
        self.enc_norm = nn.GroupNorm(groups, c2)
        self.enc_out = nn.Conv2d(c2, 2 * latent_ch, 3, padding=1)
        self.dec_in = nn.Conv2d(latent_ch, c2, 3, padding=1)
        self.dec = nn.ModuleList([Block(c2, c2, groups), Block(c2, c2, groups), Block(c2, ch, groups)])
        self.up = nn.ModuleList([nn.Conv2d(c2, c2, 3, padding=1), nn.Conv2d(c2, c2, 3, padding=1)])
        self.dec_norm = nn.GroupNorm(groups, ch)
        self.dec_out = nn.Conv2d(ch, 1, 3, padding=1)
        self.latent_ch = latent_ch

    def moments(self, x: torch.Tensor):
        h = self.enc_in(x)
        e = x.new_zeros(1)
        h = self.enc[0](h, e)
        h = self.down[0](h)
        h = self.enc[1](h, e)
        h = self.down[1](h)
        h = self.enc[2](h, e)
        mean, logvar = self.enc_out(F.silu(self.enc_norm(h))).chunk(2, dim=1)
        return mean, logvar.clamp(-20.0, 5.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        e = z.new_zeros(1)
        h = self.dec[0](self.dec_in(z), e)
        h = self.up[0](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = self.dec[1](h, e)
        h = self.up[1](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = self.dec[2](h, e)
        return self.dec_out(F.silu(self.dec_norm(h)))


class Attention(nn.Module):
    """Multi-head attention of the C-channel positions of a map over a token sequence (itself for
    self-attention, the caption for cross-attention), with explicit matmul/softmax."""

    def __init__(self, ch: int, ctx_dim: int, heads: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch)
        self.q = nn.Linear(ch, ch, bias=False)
        self.k = nn.Linear(ctx_dim, ch, bias=False)
        self.v = nn.Linear(ctx_dim, ch, bias=False)
        self.out = nn.Linear(ch, ch)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.heads = heads

    def forward(self, x: torch.Tensor, ctx: torch.Tensor, self_attn: bool) -> torch.Tensor:
        b, c, hh, ww = x.shape
        h = self.norm(x).flatten(2).transpose(1, 2)  # [B, N, C]
        src = h if self_attn else ctx
        n, m, d = h.shape[1], src.shape[1], c // self.heads
        q = self.q(h).reshape(b, n, self.heads, d).transpose(1, 2)  # [B, H, N, d]
        k = self.k(src).reshape(b, m, self.heads, d).transpose(1, 2)
        v = self.v(src).reshape(b, m, self.heads, d).transpose(1, 2)
        w = torch.matmul(q, k.transpose(2, 3)) * (float(d) ** -0.5)
        w = torch.softmax(w.float(), dim=-1).to(v.dtype)
        o = torch.matmul(w, v).transpose(1, 2).reshape(b, n, c)
        return x + self.out(o).transpose(1, 2).reshape(b, c, hh, ww)


class Layer(nn.Module):
    """A conditioned residual block, then self-attention and cross-attention to the caption."""

    def __init__(self, cin: int, cout: int, a: dict):
        super().__init__()
        self.block = Block(cin, cout, a["groups"], a["temb_dim"])
        self.self_attn = Attention(cout, cout, a["heads"], a["groups"])
        self.cross_attn = Attention(cout, a["ctx_dim"], a["heads"], a["groups"])

    def forward(self, x: torch.Tensor, emb: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        h = self.block(x, emb)
        h = self.self_attn(h, ctx, True)
        return self.cross_attn(h, ctx, False)


class Resample(nn.Module):
    """A 3x3 conv after a 2x nearest upsampling (up) or with stride 2 (down)."""

    def __init__(self, ch: int, up: bool):
        super().__init__()
        self.up = up
        self.conv = nn.Conv2d(ch, ch, 3, stride=1 if up else 2, padding=1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv(x)


class UpLevel(nn.Module):
    """One decoder resolution: Layers that each concatenate one skip (popped from hs), then an
    optional upsampling."""

    def __init__(self, layers: List[nn.Module], upsample: nn.Module):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.upsample = upsample

    def forward(self, h: torch.Tensor, hs: List[torch.Tensor], emb: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            h = layer(torch.cat([h, hs.pop()], dim=1), emb, ctx)
        return self.upsample(h, emb, ctx)


class Identity3(nn.Module):
    def forward(self, x: torch.Tensor, emb: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        return x


class LatentUNet(nn.Module):
    """F(c_in x, c_noise, context): latents [B, 4, 8, 8], c_noise [B], context [B, L, D] -> [B, 4, 8, 8]."""

    def __init__(self, latent_ch: int = 4, ch: int = 64, ch_mult: List[int] = (1, 2), num_res_blocks: int = 2,
                 heads: int = 4, ctx_dim: int = 32, temb_dim: int = 128, groups: int = 16):
        super().__init__()
        a = dict(heads=heads, ctx_dim=ctx_dim, temb_dim=temb_dim, groups=groups)
        self.freq_dim = ch
        self.temb1 = nn.Linear(ch, temb_dim)
        self.temb2 = nn.Linear(temb_dim, temb_dim)
        self.ctx_norm = nn.LayerNorm(ctx_dim)
        self.conv_in = nn.Conv2d(latent_ch, ch, 3, padding=1)
        down: List[nn.Module] = []
        skips = [ch]
        cur = ch
        for level, mult in enumerate(ch_mult):
            for _ in range(num_res_blocks):
                down.append(Layer(cur, ch * mult, a))
                cur = ch * mult
                skips.append(cur)
            if level != len(ch_mult) - 1:
                down.append(Resample(cur, up=False))
                skips.append(cur)
        self.down = nn.ModuleList(down)
        self.mid = Layer(cur, cur, a)
        up: List[nn.Module] = []
        for level, mult in reversed(list(enumerate(ch_mult))):
            layers: List[nn.Module] = []
            for _ in range(num_res_blocks + 1):
                layers.append(Layer(cur + skips.pop(), ch * mult, a))
                cur = ch * mult
            up.append(UpLevel(layers, Resample(cur, up=True) if level != 0 else Identity3()))
        self.up = nn.ModuleList(up)
        self.norm_out = nn.GroupNorm(groups, cur)
        self.conv_out = nn.Conv2d(cur, latent_ch, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        half = self.freq_dim // 2
        freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=x.device) * (-math.log(10000.0) / half))
        args = c_noise.float()[:, None] * 250.0 * freqs[None, :]  # c_noise = log(sigma)/4, about [-2, 1.5]
        emb = self.temb2(F.silu(self.temb1(torch.cat([torch.cos(args), torch.sin(args)], dim=1).to(x.dtype))))
        ctx = self.ctx_norm(context.to(x.dtype))
        h = self.conv_in(x)
        hs: List[torch.Tensor] = [h]
        for m in self.down:
            h = m(h, emb, ctx)
            hs.append(h)
        h = self.mid(h, emb, ctx)
        for level in self.up:
            h = level(h, hs, emb, ctx)
        return self.conv_out(F.silu(self.norm_out(h)))


class Denoiser(nn.Module):
    """D(x, sigma, context) with EDM's preconditioning around LatentUNet; x is in sigma-space
    (scaled latents + sigma * noise), sigma [B]."""

    def __init__(self, unet: LatentUNet, sigma_data: float = SIGMA_DATA):
        super().__init__()
        self.unet = unet
        self.sigma_data = sigma_data

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        s = sigma.to(torch.float32).reshape(-1, 1, 1, 1).expand(x.shape[0], 1, 1, 1)
        sd = self.sigma_data
        c_skip = sd * sd / (s * s + sd * sd)
        c_out = s * sd / torch.sqrt(s * s + sd * sd)
        c_in = 1.0 / torch.sqrt(s * s + sd * sd)
        c_noise = torch.log(s.clamp(min=1e-20)).flatten() / 4.0
        f = self.unet((c_in * x).to(x.dtype), c_noise, context)
        return c_skip * x + c_out * f.to(torch.float32)


def build_vae() -> VAE:
    return VAE(**VAE_ARCH)


def build_unet() -> LatentUNet:
    return LatentUNet(**UNET_ARCH)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# ---------------------------------------------------------------- data

def load_split(split: str, data: str):
    """(float32 [N, 1, 32, 32] in [-1, 1], int64 labels [N]) or None when the split is absent."""
    if data and os.path.isfile(os.path.join(data, f"fashion_{split}.npy")):
        img_path = os.path.join(data, f"fashion_{split}.npy")
        lbl_path = os.path.join(data, f"fashion_{split}_labels.npy")
        if not os.path.isfile(lbl_path):
            sys.exit(f"error: {lbl_path} not found: the latent demo needs labels; "
                     "re-run bash scripts/prepare_gpujob.sh (it writes fashion_{train,test}_labels.npy)")
        images = np.load(img_path)
        labels = np.load(lbl_path).astype(np.int64)
        if images.ndim != 4 or images.shape[1:] != (1, 32, 32) or images.dtype != np.uint8 \
                or labels.shape != (images.shape[0],):
            sys.exit(f"error: {img_path} must be uint8 [N, 1, 32, 32] with labels [N]; "
                     f"got {images.dtype} {list(images.shape)}, labels {list(labels.shape)}")
        return images.astype(np.float32) / 127.5 - 1.0, labels
    if data and os.path.isfile(os.path.join(data, "fashion_train.npy")):
        return None  # the npy layout without this split
    root = fashion_data.data_dir(data)
    if split == "test" and not os.path.isfile(os.path.join(root, fashion_data.FILES["test"][0])):
        return None
    images, labels = fashion_data.load(split, data)
    return fashion_data.to_model_range(images), labels


# ---------------------------------------------------------------- helpers

def save_npz(path: str, arrays: dict):
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def state_arrays(module: nn.Module, prefix: str) -> dict:
    return {prefix + k: v.detach().float().cpu().numpy() for k, v in module.state_dict().items()}


@torch.no_grad()
def ema_update(ema_params, params, decay: float):
    if hasattr(torch, "_foreach_lerp_"):
        torch._foreach_lerp_(ema_params, params, 1.0 - decay)
    else:
        for e, p in zip(ema_params, params):
            e.lerp_(p, 1.0 - decay)


def edm_sigmas(steps: int, sigma_min=0.002, sigma_max=80.0, rho=7.0) -> List[float]:
    i = np.arange(steps)
    s = (sigma_max ** (1 / rho) + i / (steps - 1) * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return [float(v) for v in s] + [0.0]


@torch.no_grad()
def sample_latents(den: Denoiser, ctx: torch.Tensor, unc: torch.Tensor, guidance: float, steps: int,
                   seed: int = 0) -> torch.Tensor:
    """EDM Heun sampler (Algorithm 1) with classifier-free guidance D_u + w (D_c - D_u)."""
    n = ctx.shape[0]
    dev = ctx.device
    g = torch.Generator().manual_seed(seed)
    sig = edm_sigmas(steps)
    x = torch.randn(n, UNET_ARCH["latent_ch"], 8, 8, generator=g).to(dev) * sig[0]
    both = torch.cat([ctx, unc.expand_as(ctx)])

    def D(x, s):
        out = den(torch.cat([x, x]), torch.full((2 * n,), s, device=dev), both)
        dc, du = out[:n], out[n:]
        return du + guidance * (dc - du)

    for i in range(steps):
        s, s_next = sig[i], sig[i + 1]
        d = (x - D(x, s)) / s
        x_next = x + (s_next - s) * d
        if s_next > 0:
            d2 = (x_next - D(x_next, s_next)) / s_next
            x_next = x + (s_next - s) * 0.5 * (d + d2)
        x = x_next
    return x


@torch.no_grad()
def classify(clf: nn.Module, images: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    return torch.cat([clf(images[i:i + batch].float()).argmax(1) for i in range(0, images.shape[0], batch)])


# ---------------------------------------------------------------- training

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (fashion_ldm.npz/.json, fashion_classifier.npz, ...)")
    p.add_argument("--data", help="folder with fashion_train.npy + fashion_train_labels.npy (prepare_gpujob.sh) "
                                  "or Fashion-MNIST idx.gz files (default: Debian's)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--minutes", type=float, default=6.5, help="wall-clock budget of the whole run")
    p.add_argument("--vae-minutes", type=float, default=1.2, help="budget of the VAE stage")
    p.add_argument("--clf-epochs", type=int, default=12, help="classifier epochs")
    p.add_argument("--vae-batch", type=int, default=512)
    p.add_argument("--batch", type=int, default=1024, help="latent denoiser batch")
    p.add_argument("--lr", type=float, default=5e-4, help="latent denoiser learning rate (Adam)")
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--kl-weight", type=float, default=1e-2, help="KL weight (per latent element, relative to "
                                                                  "the per-pixel reconstruction loss x 4)")
    p.add_argument("--eval-samples", type=int, default=500, help="samples per guidance in the quick look")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast on the GPU (default: fp32 with TF32)")
    p.add_argument("--smoke", action="store_true", help="a few steps of everything on a few images (CPU test)")
    args = p.parse_args()

    t_start = time.time()
    deadline = t_start + args.minutes * 60.0
    if args.smoke:  # tiny batches, step counts instead of the clock
        args.threads = args.threads or 1
        args.vae_batch, args.batch, args.eval_samples = 16, 16, 20
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    # fp32 with TF32 matmuls by default: the networks are small enough that bf16 autocast gains little
    bf16 = dict(device_type=device.type, dtype=torch.bfloat16, enabled=cuda and args.bf16)
    os.makedirs(args.out, exist_ok=True)

    train = load_split("train", args.data)
    test = load_split("test", args.data)
    x_np, y_np = train
    if args.smoke:
        x_np, y_np = x_np[:256], y_np[:256]
        test = None if test is None else (test[0][:256], test[1][:256])
    x_all = torch.from_numpy(np.ascontiguousarray(x_np)).to(device)
    y_all = torch.from_numpy(y_np).to(device)
    n_data = x_all.shape[0]
    log = dict(device=str(device), torch=torch.__version__, bf16=bf16["enabled"], gpu=torch.cuda.get_device_name(device) if cuda else None,
               train_images=n_data, test_images=0 if test is None else len(test[1]), smoke=args.smoke,
               captions=CAPTIONS, tokens=TOKENS, token_dim=TOKEN_DIM, vae_arch=VAE_ARCH, unet_arch=UNET_ARCH,
               sigma_data=SIGMA_DATA, p_mean=P_MEAN, p_std=P_STD, cond_drop=COND_DROP, args=vars(args))
    print(f"data {tuple(x_all.shape)} on {device}  (test {log['test_images']})", flush=True)

    def flip_half(xb):
        m = torch.rand(xb.shape[0], 1, 1, 1, device=xb.device) < 0.5
        return torch.where(m, xb.flip(3), xb)

    # ---- 1. VAE ----
    vae = build_vae().to(device)
    log["vae_params"] = n_params(vae)
    opt = torch.optim.Adam(vae.parameters(), lr=1e-3)
    t0, step = time.time(), 0
    vae_steps = 30 if args.smoke else 10 ** 9
    while step < vae_steps and (args.smoke or time.time() - t0 < args.vae_minutes * 60):
        frac = step / vae_steps if args.smoke else (time.time() - t0) / (args.vae_minutes * 60)
        for g in opt.param_groups:  # cosine decay to 1e-4 over the stage's budget
            g["lr"] = 1e-4 + 0.9e-3 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
        xb = flip_half(x_all[torch.randint(0, n_data, (args.vae_batch,), device=device)])
        with torch.autocast(**bf16):
            mean, logvar = vae.moments(xb)
            z = mean + torch.exp(0.5 * logvar.float()) * torch.randn_like(mean.float())
            rec = vae.decode(z).float()
        rec_loss = (rec - xb).abs().mean() + F.mse_loss(rec, xb)
        kl = 0.5 * (mean.float() ** 2 + logvar.float().exp() - 1 - logvar.float()).mean()
        loss = rec_loss + args.kl_weight * kl * 0.25  # 4x fewer latent elements than pixels
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 500 == 0 or step == vae_steps:
            print(f"vae step {step}  {time.time() - t0:.0f}s  rec {rec_loss.item():.4f}  kl {kl.item():.3f}", flush=True)
    vae.eval().requires_grad_(False)
    log.update(vae_steps=step, vae_seconds=round(time.time() - t0, 1), vae_rec_loss=rec_loss.item(), vae_kl=kl.item())

    # Latents of the training set (and its mirror image): mean and std of the posterior.
    with torch.no_grad():
        mus, stds = [], []
        for src in (x_all, x_all.flip(3)):
            for i in range(0, n_data, 2000):
                m_, lv_ = vae.moments(src[i:i + 2000])
                mus.append(m_)
                stds.append(torch.exp(0.5 * lv_))
        lat_mu, lat_std = torch.cat(mus), torch.cat(stds)
        lat_y = torch.cat([y_all, y_all])
        scale = float(1.0 / lat_mu.std().item())
        mae = 0.0
        xs = x_all[:2000] if test is None else torch.from_numpy(test[0][:2000]).to(device)
        mae = (vae.decode(vae.moments(xs)[0]) - xs).abs().mean().item()
    log.update(latent_scale=scale, latent_shift=0.0, latent_mean=lat_mu.mean().item(),
               latent_posterior_std=lat_std.mean().item(), vae_recon_mae=mae,
               latent_absmax_scaled=float((lat_mu.abs().max() * scale).item()))
    print(f"latents: scale {scale:.4f} (mean {lat_mu.mean().item():.3f}), posterior std {lat_std.mean().item():.3f}, "
          f"held-out recon MAE {mae:.4f}", flush=True)
    save_npz(os.path.join(args.out, "fashion_ldm.npz"), dict(state_arrays(vae, "vae."), context_table=context_table()))
    # The captions' embeddings as scoreflow --cond / --uncond files (export_fashion_ldm.py writes the same).
    save_npz(os.path.join(args.out, "fashion_prompts.npz"), dict(context=context_table()[:10]))
    save_npz(os.path.join(args.out, "fashion_uncond.npz"), dict(context=context_table()[10:]))

    # ---- 2. classifier (train_features.FeatureNet, with logits) ----
    import train_features
    clf = train_features.FeatureNet().to(device)
    spe = max(1, n_data // 256)
    cbatch = 32 if args.smoke else 256
    total = 20 if args.smoke else args.clf_epochs * spe
    copt = torch.optim.SGD(clf.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    csched = torch.optim.lr_scheduler.OneCycleLR(copt, 0.1, total_steps=total)
    t0 = time.time()
    clf.train()
    for step in range(total):
        idx = torch.randint(0, n_data, (cbatch,), device=device)
        xb = F.pad(flip_half(x_all[idx]), (2, 2, 2, 2), value=-1.0)
        dx, dy = np.random.randint(0, 5, size=2)
        xb = xb[:, :, dy:dy + 32, dx:dx + 32]
        loss = F.cross_entropy(clf(xb), y_all[idx], label_smoothing=0.1)  # fp32 (TF32): BatchNorm, small
        copt.zero_grad(set_to_none=True)
        loss.backward()
        copt.step()
        csched.step()
    clf.eval().requires_grad_(False)
    if test is not None:
        xt, yt = torch.from_numpy(test[0]).to(device), torch.from_numpy(test[1]).to(device)
        clf_acc = (classify(clf, xt) == yt).float().mean().item()
    else:
        clf_acc = None
    log.update(clf_steps=total, clf_seconds=round(time.time() - t0, 1), clf_test_accuracy=clf_acc)
    print(f"classifier: {total} steps, {time.time() - t0:.0f}s, test accuracy {clf_acc}", flush=True)
    save_npz(os.path.join(args.out, "fashion_classifier.npz"), state_arrays(clf, ""))

    # ---- 3. latent denoiser ----
    table = torch.from_numpy(context_table()).to(device)  # [11, L, D]
    unet = build_unet().to(device)
    den = Denoiser(unet).to(device)
    ema = build_unet().to(device)
    ema.load_state_dict(unet.state_dict())
    ema.requires_grad_(False)
    log["unet_params"] = n_params(unet)
    print(f"params: vae {log['vae_params']}, unet {log['unet_params']}, classifier {n_params(clf)}", flush=True)
    opt = torch.optim.Adam(unet.parameters(), lr=args.lr)
    m_params, e_params = list(unet.parameters()), list(ema.parameters())
    reserve = 8.0 if args.smoke else 25.0 + 0.02 * args.eval_samples  # seconds kept for the quick look
    budget_end = deadline - reserve
    n_lat = lat_mu.shape[0]
    t0, step, loss_avg, losses = time.time(), 0, None, []
    ldm_steps = 20 if args.smoke else 10 ** 9
    last_ckpt = t0

    def save_unet():
        save_npz(os.path.join(args.out, "fashion_ldm.npz"),
                 dict(state_arrays(vae, "vae."), **state_arrays(ema, "unet."), context_table=context_table()))

    while step < ldm_steps and (args.smoke or time.time() < budget_end):
        idx = torch.randint(0, n_lat, (args.batch,), device=device)
        z = (lat_mu[idx] + lat_std[idx] * torch.randn_like(lat_mu[idx])) * scale
        rows = torch.where(torch.rand(args.batch, device=device) < COND_DROP, torch.full_like(lat_y[idx], 10), lat_y[idx])
        ctx = table[rows]
        sigma = torch.exp(P_MEAN + P_STD * torch.randn(args.batch, device=device))
        w = (sigma ** 2 + SIGMA_DATA ** 2) / (sigma * SIGMA_DATA) ** 2
        with torch.autocast(**bf16):
            dz = den(z + sigma[:, None, None, None] * torch.randn_like(z), sigma, ctx)
        loss = (w[:, None, None, None] * (dz.float() - z) ** 2).mean()
        for g in opt.param_groups:
            g["lr"] = args.lr * min(1.0, (step + 1) / 300)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        ema_update(e_params, m_params, min(args.ema, (1 + step) / (10 + step)))
        step += 1
        if step % 100 == 0 or step == ldm_steps:
            lv = loss.item()
            loss_avg = lv if loss_avg is None else 0.9 * loss_avg + 0.1 * lv
            if step % 1000 == 0 or step == ldm_steps:
                losses.append((step, round(time.time() - t0, 1), round(loss_avg, 5)))
                print(f"ldm step {step}  {time.time() - t0:.0f}s  loss {loss_avg:.4f}", flush=True)
        if time.time() - last_ckpt > 120:
            save_unet()
            last_ckpt = time.time()
    if cuda:
        torch.cuda.synchronize()
    log.update(ldm_steps=step, ldm_seconds=round(time.time() - t0, 1), ldm_final_loss=loss_avg, ldm_losses=losses,
               ldm_epochs=round(step * args.batch / n_lat, 1))
    save_unet()
    print(f"ldm: {step} steps, {time.time() - t0:.0f}s, loss {loss_avg}", flush=True)

    # ---- 4. quick look: Heun-18 samples at guidance 1, 3, 5, classified ----
    ema.eval()
    den_ema = Denoiser(ema).to(device).eval()
    n_eval = 20 if args.smoke else args.eval_samples
    steps = 3 if args.smoke else 18
    rows = torch.arange(n_eval, device=device) % 10
    acc = {}
    for gw in (1.0, 3.0, 5.0):
        with torch.autocast(**bf16):
            zs = sample_latents(den_ema, table[rows], table[10:11], gw, steps, seed=1)
            imgs = vae.decode(zs.float() / scale).float().clamp(-1, 1)
        acc[str(gw)] = (classify(clf, imgs) == rows).float().mean().item()
        if gw == 3.0:
            fashion_data.grid_png(os.path.join(args.out, "samples_g3.png"), imgs[:80].cpu().numpy(), nrow=10)
        print(f"guidance {gw}: class accuracy {acc[str(gw)]:.3f} ({n_eval} Heun-{steps} samples)", flush=True)
    log.update(quick_look=dict(sampler=f"heun {steps} steps (EDM grid, rho 7)", samples=n_eval, accuracy=acc),
               total_seconds=round(time.time() - t_start, 1))
    with open(os.path.join(args.out, "fashion_ldm.json"), "w") as f:
        json.dump(log, f, indent=1)
    print(json.dumps({k: v for k, v in log.items() if k not in ("ldm_losses", "captions", "args")}), flush=True)


if __name__ == "__main__":
    main()
