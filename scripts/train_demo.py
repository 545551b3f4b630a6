#!/usr/bin/env python3
"""Trains scoreflow's Fashion-MNIST demo network: a small DDPM U-Net (Ho et al. 2020).

eps-prediction, linear betas 1e-4..0.02 over 1000 steps (the setting of Analytic-DPM, Bao et al.
2022), Fashion-MNIST padded to 32x32 with -1, data in [-1, 1], EMA of the weights, bf16 autocast on
GPU. Stage 2 (--head-minutes) freezes the backbone and trains an SN-DPM head (Bao et al. 2022b)
whose C extra output channels predict E[eps^2 | x_t] (loss ||h - eps^2||^2).

The network uses only GroupNorm, SiLU, conv, linear, sin/cos and one bmm/softmax self-attention at
8x8, so TorchScript written by scripts/export_demo.py (Debian's torch 1.13) loads in LibTorch 1.13.
Weights are written as .npz (name -> float32 array) so any torch version can read them back.

    python3 scripts/train_demo.py --device cuda --minutes 7 --head-minutes 0.8 --out DIR
"""
import argparse
import json
import math
import os
import sys
import time
from typing import List, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fashion_data  # noqa: E402

# Architecture of the shipped model (export_demo.py rebuilds it from these).
ARCH = dict(in_ch=1, ch=48, ch_mult=(1, 2, 2), num_res_blocks=2, temb_dim=192, dropout=0.1, groups=16)
BETA_START, BETA_END, NUM_STEPS = 1e-4, 0.02, 1000


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timestep indices t [B] -> [B, dim] (DDPM)."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device) * (-math.log(10000.0) / (half - 1)))
    args = t.to(torch.float32)[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, temb_dim: int, dropout: float, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb_dim, cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.dropout = dropout
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(F.silu(temb))[:, :, None, None]
        h = F.dropout(F.silu(self.norm2(h)), p=self.dropout, training=self.training)
        return self.skip(x) + self.conv2(h)


class SelfAttention(nn.Module):
    """Single-head self-attention over the H*W positions, written with bmm/softmax."""

    def __init__(self, ch: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, hh * ww).unbind(1)
        w = torch.bmm(q.transpose(1, 2), k) * (float(c) ** -0.5)  # [B, HW, HW]
        w = torch.softmax(w.float(), dim=2).to(v.dtype)
        h = torch.bmm(v, w.transpose(1, 2)).reshape(b, c, hh, ww)
        return x + self.proj(h)


class Downsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UpLevel(nn.Module):
    """One decoder resolution: ResBlocks that each concatenate one skip (popped from hs), then an
    optional 2x upsampling."""

    def __init__(self, blocks: List[nn.Module], upsample: Optional[Upsample]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.upsample = upsample

    def forward(self, h: torch.Tensor, hs: List[torch.Tensor], temb: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            h = block(torch.cat([h, hs.pop()], dim=1), temb)
        upsample = self.upsample
        if upsample is not None:
            h = upsample(h, temb)
        return h


class Eps2Head(nn.Module):
    """SN-DPM head: C channels predicting E[eps^2 | x_t] from the backbone's last hidden map."""

    def __init__(self, ch: int, out_ch: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, ch)
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, ch)
        self.conv2 = nn.Conv2d(ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.constant_(self.conv2.bias, 1.0)  # E[eps^2] = 1 where x_t says nothing

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(h)))
        return self.conv2(F.silu(self.norm2(h)))


class UNet(nn.Module):
    """DDPM U-Net. forward(x_t [B,C,H,W], t [B] timestep indices, float or int64) -> eps [B,C,H,W],
    or [B,2C,H,W] = [eps, E[eps^2]] with the SN-DPM head. features(x_t, t) -> bottleneck [B,C',8,8]."""

    def __init__(self, in_ch: int = 1, ch: int = 64, ch_mult=(1, 2, 2), num_res_blocks: int = 2,
                 temb_dim: int = 256, dropout: float = 0.1, groups: int = 32, eps2_head: bool = False):
        super().__init__()
        self.ch = ch
        self.out_ch = in_ch
        self.temb_in = ch
        self.temb1 = nn.Linear(ch, temb_dim)
        self.temb2 = nn.Linear(temb_dim, temb_dim)
        self.conv_in = nn.Conv2d(in_ch, ch, 3, padding=1)
        down: List[nn.Module] = []
        skips = [ch]
        cur = ch
        for level, mult in enumerate(ch_mult):
            for _ in range(num_res_blocks):
                down.append(ResBlock(cur, ch * mult, temb_dim, dropout, groups))
                cur = ch * mult
                skips.append(cur)
            if level != len(ch_mult) - 1:
                down.append(Downsample(cur))
                skips.append(cur)
        self.down = nn.ModuleList(down)
        self.mid1 = ResBlock(cur, cur, temb_dim, dropout, groups)
        self.mid_attn = SelfAttention(cur, groups)
        self.mid2 = ResBlock(cur, cur, temb_dim, dropout, groups)
        up: List[nn.Module] = []
        for level, mult in reversed(list(enumerate(ch_mult))):
            blocks: List[nn.Module] = []
            for _ in range(num_res_blocks + 1):
                blocks.append(ResBlock(cur + skips.pop(), ch * mult, temb_dim, dropout, groups))
                cur = ch * mult
            up.append(UpLevel(blocks, Upsample(cur) if level != 0 else None))
        self.up = nn.ModuleList(up)
        self.norm_out = nn.GroupNorm(groups, cur)
        self.conv_out = nn.Conv2d(cur, in_ch, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        self.head: Optional[Eps2Head] = Eps2Head(cur, in_ch, groups) if eps2_head else None

    def _temb(self, t: torch.Tensor, batch: int) -> torch.Tensor:
        if t.dim() == 0:
            t = t.expand(batch)
        emb = timestep_embedding(t, self.temb_in)
        return self.temb2(F.silu(self.temb1(emb)))

    def _encode(self, x: torch.Tensor, temb: torch.Tensor):
        hs: List[torch.Tensor] = [self.conv_in(x)]
        h = hs[-1]
        for block in self.down:
            h = block(h, temb)
            hs.append(h)
        h = self.mid1(h, temb)
        h = self.mid_attn(h, temb)
        h = self.mid2(h, temb)
        return h, hs

    def _decode(self, h: torch.Tensor, hs: List[torch.Tensor], temb: torch.Tensor) -> torch.Tensor:
        for level in self.up:
            h = level(h, hs, temb)
        return h

    def hidden(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Last hidden map [B, ch, H, W] before the output norm (input of the SN-DPM head)."""
        temb = self._temb(t, x.shape[0])
        h, hs = self._encode(x, temb)
        return self._decode(h, hs, temb)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = self.hidden(x, t)
        eps = self.conv_out(F.silu(self.norm_out(h)))
        head = self.head
        if head is not None:
            return torch.cat([eps, head(h)], dim=1)
        return eps

    @torch.jit.export
    def features(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Bottleneck after the middle block, [B, C', H/4, W/4] (8x8 at 32x32): AMED's input."""
        temb = self._temb(t, x.shape[0])
        h, _ = self._encode(x, temb)
        return h


def build(eps2_head: bool = False) -> UNet:
    return UNet(**ARCH, eps2_head=eps2_head)


def alphas_bar(device) -> torch.Tensor:
    betas = torch.linspace(BETA_START, BETA_END, NUM_STEPS, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, 0).to(device=device, dtype=torch.float32)


@torch.no_grad()
def ema_update(ema_params, params, decay: float):
    if hasattr(torch, "_foreach_lerp_"):
        torch._foreach_lerp_(ema_params, params, 1.0 - decay)
    else:  # torch 1.13
        for e, p in zip(ema_params, params):
            e.lerp_(p, 1.0 - decay)


def save_npz(model: nn.Module, path: str, extra: Optional[dict] = None):
    arrays = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    if extra is not None:
        with open(os.path.join(os.path.dirname(path), "train_log.json"), "w") as f:
            json.dump(extra, f, indent=1)


def load_npz(model: nn.Module, path: str, strict: bool = True):
    with np.load(path) as z:
        state = {k: torch.from_numpy(z[k]) for k in z.files}
    return model.load_state_dict(state, strict=strict)


@torch.no_grad()
def ddim_sample(model: nn.Module, n: int, steps: int, device, seed: int = 0) -> torch.Tensor:
    """DDIM (eta = 0, Song et al. 2021) on an even grid of `steps` indices; returns x0 in [-1, 1]."""
    ab = alphas_bar(device).double()
    ts = torch.linspace(NUM_STEPS - 1, 0, steps).round().long().tolist()
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn(n, 1, 32, 32, generator=g).to(device)
    for i, t in enumerate(ts):
        a_t = ab[t]
        a_next = ab[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0, dtype=torch.float64, device=device)
        eps = model(x, torch.full((n,), float(t), device=device))[:, :1].double()
        x0 = ((x.double() - (1 - a_t).sqrt() * eps) / a_t.sqrt()).clamp(-1, 1)
        x = (a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps).float()
    return x


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--minutes", type=float, default=7.0, help="wall-clock budget of stage 1 (eps)")
    p.add_argument("--head-minutes", type=float, default=0.0, help="budget of stage 2 (SN-DPM head); 0 = skip")
    p.add_argument("--out", required=True, help="output folder (weights .npz + log .json)")
    p.add_argument("--init", help="start from these weights (.npz); with --minutes 0 only stage 2 runs")
    p.add_argument("--data", help="Fashion-MNIST folder (default: Debian's)")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--ema", type=float, default=0.9995)
    p.add_argument("--compile", action="store_true", help="torch.compile the network for training (PyTorch 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=float, default=2.0, help="minutes between checkpoints")
    p.add_argument("--tiny", action="store_true", help="ch=32 network for CPU smoke tests")
    args = p.parse_args()

    t_start = time.time()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    if args.tiny:
        ARCH.update(ch=32, num_res_blocks=1, groups=16)
    images, _ = fashion_data.load("train", args.data)
    data = torch.from_numpy(fashion_data.to_model_range(images)).to(device)
    n_data = data.shape[0]
    ab = alphas_bar(device)
    use_bf16 = device.type == "cuda"
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True

    model = build().to(device)
    if args.init:
        load_npz(model, args.init, strict=False)
    ema = build().to(device)
    ema.load_state_dict(model.state_dict())
    ema.eval().requires_grad_(False)
    n_params = sum(p.numel() for p in model.parameters())
    log = dict(arch=dict(ARCH), params=n_params, device=str(device), batch=args.batch, lr=args.lr,
               ema=args.ema, torch=torch.__version__,
               gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None)
    print(f"params {n_params}  device {device}  data {tuple(data.shape)}", flush=True)

    def batch_xt(bs):
        idx = torch.randint(0, n_data, (bs,), device=device)
        x0 = data[idx]
        t = torch.randint(0, NUM_STEPS, (bs,), device=device)
        eps = torch.randn_like(x0)
        a = ab[t][:, None, None, None]
        return a.sqrt() * x0 + (1 - a).sqrt() * eps, t, eps

    # ---- Stage 1: eps-prediction (simple loss, uniform t) ----
    step, loss_avg, losses = 0, None, []
    if args.minutes > 0:
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)

        net = {"fwd": model}
        if args.compile and hasattr(torch, "compile"):
            net["fwd"] = torch.compile(model)

        def train_step(xt, t, eps):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                pred = net["fwd"](xt, t)
            loss = F.mse_loss(pred.float(), eps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            return loss.detach()

        m_params = list(model.parameters())
        e_params = list(ema.parameters())
        budget = args.minutes * 60.0
        t0 = time.time()
        last_ckpt = t0
        while True:
            elapsed = time.time() - t0
            if elapsed >= budget:
                break
            for g in opt.param_groups:
                g["lr"] = args.lr * min(1.0, (step + 1) / 500)  # warm-up
            try:
                loss = train_step(*batch_xt(args.batch))
            except Exception as e:  # a torch.compile failure falls back to eager once
                if net["fwd"] is model:
                    raise
                print(f"torch.compile failed ({type(e).__name__}: {e}); eager", flush=True)
                net["fwd"] = model
                continue
            ema_update(e_params, m_params, min(args.ema, (1 + step) / (10 + step)))
            step += 1
            if step % 200 == 0 or (loss_avg is None and step % 10 == 0):
                lv = loss.item()
                loss_avg = lv if loss_avg is None else 0.9 * loss_avg + 0.1 * lv
                if step % 2000 == 0:
                    losses.append((step, round(elapsed, 1), loss_avg))
                    print(f"step {step}  {elapsed:.0f}s  loss {loss_avg:.4f}", flush=True)
            if time.time() - last_ckpt > args.checkpoint_every * 60:
                for b_ema, b in zip(ema.buffers(), model.buffers()):
                    b_ema.copy_(b)
                save_npz(ema, os.path.join(args.out, "fashion_ddpm_ema.npz"), dict(log, steps=step, losses=losses))
                last_ckpt = time.time()
        if device.type == "cuda":
            torch.cuda.synchronize()
        log.update(stage1_steps=step, stage1_seconds=round(time.time() - t0, 1), stage1_final_loss=loss_avg,
                   stage1_epochs=round(step * args.batch / n_data, 1), losses=losses)
        save_npz(ema, os.path.join(args.out, "fashion_ddpm_ema.npz"), log)
        print(f"stage 1 done: {step} steps, loss {loss_avg}", flush=True)
    else:
        ema.load_state_dict(model.state_dict())

    # ---- Stage 2: SN-DPM head on the frozen EMA backbone ----
    if args.head_minutes > 0:
        full = build(eps2_head=True).to(device)
        full.load_state_dict(ema.state_dict(), strict=False)
        full.requires_grad_(False)
        full.eval()  # the frozen backbone runs as it will be used: no dropout
        head = full.head
        head.requires_grad_(True)
        head_ema = Eps2Head(full.ch, 1, ARCH["groups"]).to(device)
        head_ema.load_state_dict(head.state_dict())
        head_ema.requires_grad_(False)
        opt = torch.optim.Adam(head.parameters(), lr=args.lr)
        h_params, he_params = list(head.parameters()), list(head_ema.parameters())
        t0, hstep, hloss = time.time(), 0, None
        while time.time() - t0 < args.head_minutes * 60:
            xt, t, eps = batch_xt(args.batch)
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                hid = full.hidden(xt, t)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                pred = head(hid.float())
            loss = F.mse_loss(pred.float(), eps * eps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            ema_update(he_params, h_params, min(0.999, (1 + hstep) / (10 + hstep)))
            hstep += 1
            if hstep % 200 == 0 or (hloss is None and hstep % 10 == 0):
                lv = loss.item()
                hloss = lv if hloss is None else 0.9 * hloss + 0.1 * lv
                if hstep % 1000 == 0:
                    print(f"head step {hstep}  loss {hloss:.4f}", flush=True)
        full.head.load_state_dict(head_ema.state_dict())
        log.update(stage2_steps=hstep, stage2_seconds=round(time.time() - t0, 1), stage2_final_loss=hloss)
        save_npz(full, os.path.join(args.out, "fashion_ddpm_eps2.npz"), log)
        print(f"stage 2 done: {hstep} steps, loss {hloss}", flush=True)

    # ---- Quick look: 64 DDIM-50 samples from the EMA network ----
    samples = ddim_sample(ema, 64, 50, device).cpu().numpy()
    np.savez_compressed(os.path.join(args.out, "samples_ddim50.npz"), samples=samples)
    log["total_seconds"] = round(time.time() - t_start, 1)
    with open(os.path.join(args.out, "train_log.json"), "w") as f:
        json.dump(log, f, indent=1)
    print(json.dumps({k: v for k, v in log.items() if k != "losses"}), flush=True)


if __name__ == "__main__":
    main()
