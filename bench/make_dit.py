#!/usr/bin/env python3
"""A DiT-S/2-size transformer (Peebles & Xie 2023) on 4x32x32 latents with random weights, for the
GPU benchmark (bench/gpu_peers.sh): patch 2 (256 tokens), hidden 384, depth 12, 6 heads, adaLN
modulation from a sinusoidal timestep embedding, fixed 2-D sin-cos positions, unconditional,
eps-prediction on the DDPM linear schedule. Random weights (seeded, the adaLN layers not zeroed so
every block does work): the benchmark measures speed only.

Written both ways: TorchScript (--out-ts; attention by F.scaled_dot_product_attention, which
TorchScript of PyTorch 2.x scripts; --attention bmm writes it with bmm/softmax instead) and a
torch.export/AOTInductor package (--out-pt2, scripts/export_pt2.py; PyTorch >= 2.6).

  python3 bench/make_dit.py --out-ts dit_s2.pt --out-pt2 dit_s2.pt2 --device cuda
"""
import argparse
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

META = {"prediction": "eps", "time_input": "index", "shape": [4, 32, 32], "data_range": [-4, 4],
        "schedule": {"type": "vp_discrete", "betas": "linear", "beta_start": 1e-4, "beta_end": 0.02,
                     "num_train_steps": 1000}}


def sincos_2d(dim, grid):
    pos = torch.arange(grid, dtype=torch.float64)
    yy, xx = torch.meshgrid(pos, pos, indexing="ij")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))
    parts = [f(p.reshape(-1, 1) * omega) for p in (yy, xx) for f in (torch.sin, torch.cos)]
    return torch.cat(parts, dim=1).float()  # [grid*grid, dim]


class Block(nn.Module):
    __constants__ = ["heads", "bmm"]  # compile-time: TorchScript compiles only the chosen attention

    def __init__(self, hidden, heads, bmm: bool):
        super().__init__()
        self.heads, self.bmm = heads, bmm
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.qkv, self.proj = nn.Linear(hidden, 3 * hidden), nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.fc1, self.fc2 = nn.Linear(hidden, 4 * hidden), nn.Linear(4 * hidden, hidden)
        self.ada = nn.Linear(hidden, 6 * hidden)

    def attention(self, h):
        b, n, c = h.shape
        q, k, v = self.qkv(h).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        if self.bmm:
            w = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(c // self.heads), dim=-1)
            a = torch.matmul(w, v)
        else:
            a = F.scaled_dot_product_attention(q, k, v)
        return self.proj(a.transpose(1, 2).reshape(b, n, c))

    def forward(self, h, c):
        s1, g1, a1, s2, g2, a2 = self.ada(F.silu(c)).unsqueeze(1).chunk(6, dim=2)
        h = h + a1 * self.attention(self.norm1(h) * (1 + g1) + s1)
        return h + a2 * self.fc2(F.gelu(self.fc1(self.norm2(h) * (1 + g2) + s2), approximate="tanh"))


class DiT(nn.Module):
    def __init__(self, channels=4, size=32, patch=2, hidden=384, depth=12, heads=6, bmm=False):
        super().__init__()
        self.channels, self.patch, self.grid, self.hidden = channels, patch, size // patch, hidden
        self.embed = nn.Conv2d(channels, hidden, patch, stride=patch)
        self.register_buffer("pos", sincos_2d(hidden, size // patch).unsqueeze(0))
        self.t0, self.t1 = nn.Linear(256, hidden), nn.Linear(hidden, hidden)
        self.blocks = nn.ModuleList([Block(hidden, heads, bmm) for _ in range(depth)])
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Linear(hidden, 2 * hidden)
        self.out = nn.Linear(hidden, patch * patch * channels)

    def forward(self, x, t):
        half = 128
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=x.device) / half)
        e = t.float()[:, None] * freqs[None, :]
        c = self.t1(F.silu(self.t0(torch.cat([torch.cos(e), torch.sin(e)], dim=1))))
        h = self.embed(x).flatten(2).transpose(1, 2) + self.pos
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.ada(F.silu(c)).unsqueeze(1).chunk(2, dim=2)
        h = self.out(self.norm(h) * (1 + scale) + shift)  # [B, N, p*p*C]
        b, g, p = x.shape[0], self.grid, self.patch
        h = h.reshape(b, g, g, p, p, self.channels).permute(0, 5, 1, 3, 2, 4)
        return h.reshape(b, self.channels, g * p, g * p)


def build(bmm=False):
    torch.manual_seed(0)
    net = DiT(bmm=bmm)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.5 / math.sqrt(m.in_features))
                nn.init.zeros_(m.bias)
    return net.eval()


def load_eager(pt_path):
    """The eager DiT with the weights of the TorchScript file `pt_path` (bench/python_loop.py --eager)."""
    net = build()
    net.load_state_dict(torch.jit.load(pt_path, map_location="cpu").state_dict())
    return net.eval()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out-ts", help="TorchScript file to write")
    p.add_argument("--out-pt2", help="AOTInductor package to write (PyTorch >= 2.6)")
    p.add_argument("--device", default="cuda", help="the device the package is compiled for")
    p.add_argument("--attention", choices=["sdpa", "bmm"], default="sdpa")
    args = p.parse_args()
    net = build(bmm=args.attention == "bmm")
    params = sum(q.numel() for q in net.parameters())
    if args.out_ts:
        torch.jit.save(torch.jit.script(net), args.out_ts, _extra_files={"scoreflow.json": json.dumps(META)})
        print(f"wrote {args.out_ts}: DiT-S/2, {params} parameters, attention {args.attention}")
    if args.out_pt2:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
        import export_pt2  # noqa: E402
        export_pt2.export_pt2(build(), META, args.out_pt2, args.device)
        print(f"wrote {args.out_pt2} (+ .json) for {args.device}")


if __name__ == "__main__":
    main()
