#!/usr/bin/env python3
"""Writes a TorchScript EDM-style U-Net with random weights for the CPU benchmark
(bench/cpu_performance.sh): the DDPM++ layout of Karras et al. 2022 / Song et al. 2021 at 3x32x32
(channel multipliers 2,2,2 at 32/16/8, `--blocks` residual blocks per level, self-attention at
16x16, sinusoidal noise embedding -> MLP), x0 prediction with EDM metadata. The benchmark measures
speed only, so the weights are random (seeded). EDM's CIFAR-10 network is --channels 128 --blocks 4
(about 56M parameters); the benchmark's default is smaller (see docs/performance.md, "CPU").

  /usr/bin/python3 bench/make_edm_unet.py --out /tmp/edm_unet.pt [--channels 128 --blocks 4]
  # also the same network as an AOTInductor package for the CPU (PyTorch >= 2.6; scripts/export_pt2.py)
  python3 bench/make_edm_unet.py --out /tmp/edm_unet.pt --out-pt2 /tmp/edm_unet.pt2 --device cpu

The TorchScript file carries its size in a second extra file, edm_unet.json, so that `load_eager`
(bench/python_loop.py --eager bench/make_edm_unet.py:load_eager) rebuilds the eager network from it.
"""
import argparse
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


def norm(c):
    return nn.GroupNorm(min(32, c // 4), c)


class ResBlock(nn.Module):
    """DDPM++ residual block; `down` pools its input by 2, `up` marks the decoder block whose input the
    U-Net doubles (nearest) before the skip concatenation, `attention` adds single-head self-attention."""

    def __init__(self, cin, cout, emb, attention, down=False, up=False):
        super().__init__()
        self.norm0, self.conv0 = norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.affine = nn.Linear(emb, cout)
        self.norm1, self.conv1 = norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        self.attention, self.down, self.up = attention, down, up
        c = cout if attention else 4
        self.norm2, self.qkv, self.proj = norm(c), nn.Conv2d(c, c * 3, 1), nn.Conv2d(c, c, 1)

    def forward(self, x, emb):
        if self.down:
            x = F.avg_pool2d(x, 2)
        h = self.conv0(F.silu(self.norm0(x)))
        h = F.silu(self.norm1(h + self.affine(emb)[:, :, None, None]))
        x = (self.skip(x) + self.conv1(h)) / math.sqrt(2)
        if self.attention:
            b, c, hh, ww = x.shape
            q, k, v = self.qkv(self.norm2(x)).reshape(b, 3, c, hh * ww).unbind(1)
            w = torch.softmax(torch.bmm(q.transpose(1, 2), k) / math.sqrt(c), dim=2)
            a = torch.bmm(v, w.transpose(1, 2)).reshape(b, c, hh, ww)
            x = (x + self.proj(a)) / math.sqrt(2)
        return x


class UNet(nn.Module):
    def __init__(self, channels, blocks, mults=(2, 2, 2), attn_res=(16,), res=32, cin=3):
        super().__init__()
        emb = channels * 4
        self.channels = channels
        self.map0, self.map1 = nn.Linear(channels, emb), nn.Linear(emb, emb)
        self.conv_in = nn.Conv2d(cin, channels, 3, padding=1)
        self.enc, self.dec = nn.ModuleList(), nn.ModuleList()
        skips, c = [channels], channels
        for level, mult in enumerate(mults):
            r = res >> level
            if level > 0:  # the level's downsampling block
                self.enc.append(ResBlock(c, c, emb, False, down=True))
                skips.append(c)
            for _ in range(blocks):
                self.enc.append(ResBlock(c, channels * mult, emb, r in attn_res))
                c = channels * mult
                skips.append(c)
        for level, mult in reversed(list(enumerate(mults))):
            r = res >> level
            for i in range(blocks + 1):
                up = i == 0 and level < len(mults) - 1
                self.dec.append(ResBlock(c + skips.pop(), channels * mult, emb, r in attn_res, up=up))
                c = channels * mult
        self.norm_out, self.conv_out = norm(c), nn.Conv2d(c, cin, 3, padding=1)

    def forward(self, x, t):
        half = self.channels // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=x.device) / half)
        e = t.float()[:, None] * freqs[None, :]
        emb = F.silu(self.map1(F.silu(self.map0(torch.cat([torch.cos(e), torch.sin(e)], dim=1)))))
        h = self.conv_in(x)
        hs = [h]
        for block in self.enc:
            h = block(h, emb)
            hs.append(h)
        for block in self.dec:
            if block.up:
                h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            h = block(torch.cat([h, hs.pop()], dim=1), emb)
        return self.conv_out(F.silu(self.norm_out(h)))


def load_eager(pt_path):
    """The eager U-Net with the size and weights of the TorchScript file `pt_path`."""
    extra = {"edm_unet.json": ""}
    scripted = torch.jit.load(pt_path, map_location="cpu", _extra_files=extra)
    size = json.loads(extra["edm_unet.json"])
    net = UNet(size["channels"], size["blocks"])
    net.load_state_dict(scripted.state_dict())
    return net.eval()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--out-pt2", help="also write the network as an AOTInductor package (PyTorch >= 2.6)")
    p.add_argument("--device", default="cpu", help="the device the package is compiled for")
    args = p.parse_args()
    torch.manual_seed(0)
    net = UNet(args.channels, args.blocks).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = net(x, torch.tensor([0.1, -0.3]))
    assert out.shape == x.shape, out.shape
    meta = {"prediction": "x0", "schedule": {"type": "edm", "sigma_min": 0.002, "sigma_max": 80, "sigma_data": 0.5},
            "time_input": "edm_c_noise", "shape": [3, 32, 32], "data_range": [-1, 1],
            "description": f"EDM-style DDPM++ U-Net, random weights, channels {args.channels}, blocks {args.blocks}"}
    size = {"channels": args.channels, "blocks": args.blocks}
    torch.jit.save(torch.jit.script(net), args.out,
                   _extra_files={"scoreflow.json": json.dumps(meta), "edm_unet.json": json.dumps(size)})
    if args.out_pt2:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
        import export_pt2  # noqa: E402
        export_pt2.export_pt2(net, meta, args.out_pt2, args.device)
    params = sum(p.numel() for p in net.parameters())
    print(json.dumps({"out": args.out, "parameters": params, "channels": args.channels, "blocks": args.blocks}))


if __name__ == "__main__":
    main()
