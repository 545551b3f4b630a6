#!/usr/bin/env python3
"""Exports the Fashion-MNIST demo U-Net (weights from scripts/train_demo.py) as a scoreflow model.

Run with Debian's /usr/bin/python3 (torch 1.13) so the TorchScript archive loads in LibTorch 1.13:

    /usr/bin/python3 scripts/export_demo.py --weights fashion_ddpm_eps2.npz --out models/fashion_ddpm.pt \\
        --ref models/fashion_ddpm_ref.npz --png docs/fashion_ddpm_python_ddim50.png

The archive holds forward(x, t) -> [eps, E[eps^2]] (head "eps2") or eps (head "none"), the method
features(x, t) -> [B, 96, 8, 8], and scoreflow.json (docs/design.md section 3). After writing, the file is
reloaded and checked against the eager network and against its own metadata; on any mismatch it is
deleted and the script exits non-zero.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fashion_data  # noqa: E402
import train_demo  # noqa: E402

SHAPE = [1, 32, 32]


def metadata(head: str) -> dict:
    return {
        "prediction": "eps",
        "schedule": {"type": "vp_discrete", "betas": "linear", "beta_start": train_demo.BETA_START,
                     "beta_end": train_demo.BETA_END, "num_train_steps": train_demo.NUM_STEPS},
        "time_input": "index",
        "shape": SHAPE,
        "data_range": [-1, 1],
        "num_classes": 0,
        "head": head,
        "features": "features",
        # Training images are Fashion-MNIST's 28x28 padded to 32x32 with -1 (fashion_data.py).
        "data_prep": {"pad": 2, "pad_value": -1},
    }


def reference_inputs():
    """The fixed batch the C++ test feeds: x [4,1,32,32] ~ N(0,1) (seed 0), t [4] incl. a fraction."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, *SHAPE, generator=g)
    t = torch.tensor([0.0, 137.0, 500.5, 999.0])
    return x, t


def fail(path, msg):
    if os.path.exists(path):
        os.remove(path)
    sys.exit(f"error: export self-check failed: {msg}")


def self_check(path, eager, meta):
    """Reloads `path` and checks metadata, output channels vs head, features shape, parity with eager."""
    files = {"scoreflow.json": ""}
    m = torch.jit.load(path, map_location="cpu", _extra_files=files)
    got = json.loads(files["scoreflow.json"])
    if got != meta:
        fail(path, f"stored metadata {got} differs from {meta}")
    x, t = reference_inputs()
    with torch.no_grad():
        out = m(x, t)
        feats = m.features(x, t)
        out_int = m(x, t.round().long())
        ref = eager(x, t)
    c = meta["shape"][0]
    want_ch = {"none": c, "eps2": 2 * c, "epsc": 2 * c}.get(meta["head"])
    if want_ch is None:
        fail(path, f"unknown head {meta['head']!r} (valid: none, eps2, epsc)")
    if list(out.shape) != [4, want_ch] + meta["shape"][1:]:
        fail(path, f"head {meta['head']!r} needs {want_ch} output channels, the network gives {list(out.shape)}")
    if feats.dim() != 4 or list(feats.shape[2:]) != [8, 8]:
        fail(path, f"features() must return [B, C', 8, 8], got {list(feats.shape)}")
    if out_int.shape != out.shape:
        fail(path, "int64 timesteps give a different output shape")
    err = (out - ref).abs().max().item()
    if err > 1e-5:
        fail(path, f"reloaded forward differs from the eager network by {err}")
    return m, x, t, out, feats


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help=".npz state dict written by train_demo.py")
    p.add_argument("--out", required=True, help="TorchScript archive to write")
    p.add_argument("--head", choices=["auto", "none", "eps2"], default="auto",
                   help="auto: eps2 when the weights hold the SN-DPM head")
    p.add_argument("--ref", help="also write the reference batch and outputs (.npz) for the C++ test")
    p.add_argument("--png", help="also sample 64 images with 50-step DDIM and write a PNG grid")
    args = p.parse_args()

    with np.load(args.weights) as z:
        state = {k: torch.from_numpy(z[k]) for k in z.files}
    has_head = any(k.startswith("head.") for k in state)
    head = ("eps2" if has_head else "none") if args.head == "auto" else args.head
    if head == "eps2" and not has_head:
        sys.exit(f"error: --head eps2 but {args.weights} holds no SN-DPM head (head.* weights)")
    if head == "none":
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
    model = train_demo.build(eps2_head=(head == "eps2"))
    model.load_state_dict(state, strict=True)
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())

    meta = metadata(head)
    scripted = torch.jit.script(model)
    tmp = args.out + ".tmp"
    torch.jit.save(scripted, tmp, _extra_files={"scoreflow.json": json.dumps(meta)})
    os.replace(tmp, args.out)
    m, x, t, out, feats = self_check(args.out, model, meta)
    size = os.path.getsize(args.out)
    print(f"exported {args.out}: {n_params} parameters, {size / 2**20:.2f} MiB, head {head}")
    print(json.dumps(meta))

    if args.ref:
        np.savez(args.ref, x=x.numpy(), t=t.numpy(), out=out.numpy(), features=feats.numpy())
        print(f"wrote {args.ref}: x {list(x.shape)}, t {t.tolist()}, out {list(out.shape)}, "
              f"features {list(feats.shape)}")
    if args.png:
        torch.manual_seed(0)
        samples = train_demo.ddim_sample(m, 64, 50, torch.device("cpu"), seed=0).numpy()
        fashion_data.grid_png(args.png, samples)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
