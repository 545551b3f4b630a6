#!/usr/bin/env python3
"""Exports the TorchScript test fixtures with Debian's torch (run at build time by tests/CMakeLists.txt).

Every fixture is tiny. tiny_eps.pt comes with reference values (tiny_eps_ref.npz) computed here in
Python, so the C++ side is checked against an independent implementation of the eps -> D conversion.
"""
import json
import os
import sys

import numpy as np
import torch

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)

META = {
    "prediction": "eps",
    "schedule": {"type": "vp_discrete", "betas": "linear", "beta_start": 1e-4, "beta_end": 0.02, "num_train_steps": 1000},
    "time_input": "index",
    "shape": [1, 8, 8],
    "data_range": [-1, 1],
}


class TinyEps(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.norm = torch.nn.GroupNorm(2, 4)
        self.out = torch.nn.Conv2d(4, 1, 3, padding=1)
        self.emb = torch.nn.Linear(2, 4)

    def forward(self, x, t):
        tf = t.float() / 1000.0
        e = self.emb(torch.stack([torch.sin(tf), torch.cos(tf)], dim=1))
        h = torch.nn.functional.silu(self.norm(self.conv(x)) + e[:, :, None, None])
        return self.out(h)

    @torch.jit.export
    def bottleneck(self, x, t):
        return self.conv(x)


def save(module, name, meta=None):
    extra = {"scoreflow.json": json.dumps(meta)} if meta is not None else {}
    torch.jit.save(torch.jit.script(module), os.path.join(out, name), _extra_files=extra)


net = TinyEps().eval()
save(net, "tiny_eps.pt", dict(META, features="bottleneck"))
save(net, "no_meta.pt")
save(net, "bad_meta_type.pt", dict(META, shape="abc"))
save(net, "bad_meta_value.pt", dict(META, prediction="epsilon"))
save(net, "bad_schedule_field.pt", dict(META, schedule={"type": "vp_discrete", "beta_start": "small"}))
torch.jit.save(torch.jit.script(net), os.path.join(out, "bad_meta_json.pt"), _extra_files={"scoreflow.json": "{not json"})

# Reference: D(x, σ_n) = x − σ_n·F(α_n x, n) at integer timesteps, computed independently here.
betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)
alphas_cumprod = np.cumprod(1 - betas)
x = torch.randn(3, 1, 8, 8, dtype=torch.float32)
refs = {"x": x.numpy()}
for n in (10, 500, 990):
    sigma = float(np.sqrt((1 - alphas_cumprod[n]) / alphas_cumprod[n]))
    alpha = 1.0 / np.sqrt(1 + sigma * sigma)
    with torch.no_grad():
        f = net(x * alpha, torch.full((3,), float(n)))
    refs[f"sigma_{n}"] = np.array(sigma)
    refs[f"denoised_{n}"] = (x.double() - sigma * f.double()).numpy()
np.savez(os.path.join(out, "tiny_eps_ref.npz"), **refs)


class OneInput(torch.nn.Module):
    def forward(self, x):
        return x


class WrongShape(torch.nn.Module):
    def forward(self, x, t):
        return torch.cat([x, x], dim=1)


class NanBelow(torch.nn.Module):
    """Predicts eps = 0, except NaN at timesteps below 300 (a network that breaks at low noise)."""

    def forward(self, x, t):
        bad = (t < 300)[:, None, None, None].expand_as(x)
        return torch.where(bad, torch.full_like(x, float("nan")), torch.zeros_like(x))


class Throws(torch.nn.Module):
    def forward(self, x, t):
        if x.shape[0] > 0:
            raise RuntimeError("deliberate failure inside forward")
        return x


class CondX0(torch.nn.Module):
    """Class-conditional x0-prediction: predicts the constant image y/2 (label 3 = unconditional -> -1)."""

    def forward(self, x, t, y):
        value = torch.where(y == 3, torch.full_like(y, -2), y).float() / 2.0
        return torch.zeros_like(x) + value[:, None, None, None]


save(OneInput(), "one_input.pt", META)
save(WrongShape(), "wrong_shape.pt", META)
save(NanBelow(), "nan_below.pt", META)
save(Throws(), "throws.pt", META)
save(CondX0(), "cond_x0.pt", dict(META, prediction="x0", num_classes=3))

with open(os.path.join(out, "random_bytes.pt"), "wb") as f:
    f.write(np.random.RandomState(0).bytes(4096))
data = open(os.path.join(out, "tiny_eps.pt"), "rb").read()
with open(os.path.join(out, "truncated.pt"), "wb") as f:
    f.write(data[: len(data) // 2])
