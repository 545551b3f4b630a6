#!/usr/bin/env python3
"""Exports an EDM-style preconditioned network (Karras et al. 2022) as a scoreflow model.

The network is called as in NVlabs/edm: D = net(x, sigma, class_labels) with x = x0 + sigma*n,
class_labels one-hot [B, label_dim]; inside, D = c_skip*x + c_out*F(c_in*x, c_noise). Whatever
the preconditioning (EDMPrecond: c_noise = ln(sigma)/4; VPPrecond; VEPrecond; iDDPMPrecond), the
exported forward(x, t[, y]) takes t = sigma and int64 labels and returns D, so the metadata is
prediction x0, time_input sigma, and an alpha = 1 schedule over the network's sigma range
(type edm, or ve for VEPrecond).

Inputs (pickles from the EDM repository need its code to unpickle):
  --pickle network-snapshot.pkl --code-dir PATH/TO/edm     the 'ema' network of an EDM snapshot
  --module training.networks:EDMPrecond --kwargs '{...}' --state-dict weights.pt
                                                           any class with EDM's call signature
  --precond edm|vp|ve --state-dict weights.pt [stand-in options]
                                                           the stand-in architecture below
  --random-init --precond edm|vp|ve                        a randomly initialised stand-in (tests)

After writing, the file is reloaded and scoreflow's D(x, sigma) is compared with net(x, sigma,
class_labels) at three sigmas (see scripts/scoreflow_export.py).
"""
import argparse
import json
import math
import os
import pickle
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scoreflow_export as sx  # noqa: E402


class AttentionOp(torch.autograd.Function):
    """Attention weights softmax_k(q^T k) as a custom autograd Function, the way the EDM repository
    writes its attention (tracing has to see through it)."""

    @staticmethod
    def forward(ctx, q, k):
        w = torch.einsum("ncq,nck->nqk", q, k).softmax(dim=2)
        ctx.save_for_backward(q, k, w)
        return w

    @staticmethod
    def backward(ctx, dw):
        q, k, w = ctx.saved_tensors
        db = w * (dw - (dw * w).sum(dim=2, keepdim=True))
        return torch.einsum("nck,nqk->ncq", k, db), torch.einsum("ncq,nqk->nck", q, db)


class StandInUNet(torch.nn.Module):
    """A tiny inner network F with the EDM repo's SongUNet/DhariwalUNet call signature:
    forward(x, noise_labels [B], class_labels [B, label_dim] or None) -> [B, out_channels, H, W]."""

    def __init__(self, img_resolution, in_channels, out_channels, label_dim=0, ch=16):
        super().__init__()
        self.ch = ch
        self.map_noise = torch.nn.Sequential(torch.nn.Linear(ch, 2 * ch), torch.nn.SiLU(),
                                             torch.nn.Linear(2 * ch, 2 * ch))
        self.map_label = torch.nn.Linear(label_dim, 2 * ch, bias=False) if label_dim else None
        self.core = sx.TinyUNetCore(in_channels, out_channels, ch, 2 * ch)
        self.qkv = torch.nn.Conv2d(out_channels, 3 * out_channels, 1)
        self.scale = 1 / math.sqrt(out_channels)

    def forward(self, x, noise_labels, class_labels=None, augment_labels=None):
        emb = self.map_noise(sx.sinusoidal(noise_labels, self.ch, flip_sin_to_cos=False, max_period=1.0e4))
        if self.map_label is not None:
            emb = emb + self.map_label(class_labels)
        h = self.core(x, emb)
        # single-head self-attention over pixels, residual (EDM's UNetBlock attention, tiny)
        q, k, v = self.qkv(h).flatten(2).chunk(3, dim=1)
        w = AttentionOp.apply(q, k * self.scale)
        return h + torch.einsum("nqk,nck->ncq", w, v).reshape(h.shape)


class _Precond(torch.nn.Module):
    """Common part of the stand-in preconditioners: D = c_skip x + c_out F(c_in x, c_noise, y)."""

    def __init__(self, img_resolution, img_channels, label_dim=0, ch=16):
        super().__init__()
        self.img_resolution, self.img_channels, self.label_dim = img_resolution, img_channels, label_dim
        self.model = StandInUNet(img_resolution, img_channels, img_channels, label_dim, ch)

    def forward(self, x, sigma, class_labels=None):
        x = x.to(torch.float32)
        sigma = sigma.to(torch.float32).reshape(-1, 1, 1, 1)
        if self.label_dim == 0:
            class_labels = None
        elif class_labels is None:
            class_labels = torch.zeros([1, self.label_dim])
        else:
            class_labels = class_labels.to(torch.float32).reshape(-1, self.label_dim)
        c_skip, c_out, c_in, c_noise = self.coefficients(sigma)
        f = self.model(c_in * x, c_noise.flatten(), class_labels=class_labels)
        return c_skip * x + c_out * f


class EDMPrecond(_Precond):
    """Karras et al. 2022, Table 1 'Ours'."""

    def __init__(self, img_resolution, img_channels, label_dim=0, sigma_min=0.0, sigma_max=float("inf"),
                 sigma_data=0.5, ch=16):
        super().__init__(img_resolution, img_channels, label_dim, ch)
        self.sigma_min, self.sigma_max, self.sigma_data = sigma_min, sigma_max, sigma_data

    def coefficients(self, sigma):
        sd = self.sigma_data
        return (sd ** 2 / (sigma ** 2 + sd ** 2), sigma * sd / (sigma ** 2 + sd ** 2).sqrt(),
                1 / (sd ** 2 + sigma ** 2).sqrt(), sigma.log() / 4)


class VPPrecond(_Precond):
    """Karras et al. 2022, Table 1 'VP' (Song et al. 2021 VP SDE, beta_d = 19.9, beta_min = 0.1)."""

    def __init__(self, img_resolution, img_channels, label_dim=0, beta_d=19.9, beta_min=0.1, M=1000,
                 epsilon_t=1e-5, ch=16):
        super().__init__(img_resolution, img_channels, label_dim, ch)
        self.beta_d, self.beta_min, self.M, self.epsilon_t = beta_d, beta_min, M, epsilon_t
        self.sigma_min = float(self.sigma(epsilon_t))
        self.sigma_max = float(self.sigma(1.0))

    def sigma(self, t):
        t = torch.as_tensor(t, dtype=torch.float64)
        return ((0.5 * self.beta_d * t ** 2 + self.beta_min * t).exp() - 1).sqrt()

    def sigma_inv(self, sigma):
        return ((self.beta_min ** 2 + 2 * self.beta_d * (1 + sigma ** 2).log()).sqrt() - self.beta_min) / self.beta_d

    def coefficients(self, sigma):
        return 1, -sigma, 1 / (sigma ** 2 + 1).sqrt(), (self.M - 1) * self.sigma_inv(sigma)


class VEPrecond(_Precond):
    """Karras et al. 2022, Table 1 'VE' (Song et al. 2021 VE SDE)."""

    def __init__(self, img_resolution, img_channels, label_dim=0, sigma_min=0.02, sigma_max=100.0, ch=16):
        super().__init__(img_resolution, img_channels, label_dim, ch)
        self.sigma_min, self.sigma_max = sigma_min, sigma_max

    def coefficients(self, sigma):
        return 1, sigma, 1, (0.5 * sigma).log()


STAND_INS = {"edm": EDMPrecond, "vp": VPPrecond, "ve": VEPrecond}


class Exported(torch.nn.Module):
    """forward(x, sigma[, y int64]) -> D = net(x, sigma, one_hot(y)); label K (scoreflow's
    unconditional label) gives the all-zero class vector, EDM's own unconditional input."""

    def __init__(self, net, num_classes: int):
        super().__init__()
        self.net, self.num_classes = net, num_classes

    def raw(self, x, sigma, y=None):
        if self.num_classes == 0:
            return self.net(x, sigma)
        onehot = torch.nn.functional.one_hot(y, self.num_classes + 1)[:, : self.num_classes]
        return self.net(x, sigma, onehot.to(torch.float32))

    def forward(self, x, sigma, y=None):
        return self.raw(x, sigma, y)


def load_network(args):
    if args.pickle:
        sx.require_file(args.pickle, "--pickle")
        if args.code_dir:
            sys.path.insert(0, args.code_dir)
        try:
            with open(args.pickle, "rb") as f:
                data = pickle.load(f)
        except (ModuleNotFoundError, ImportError) as e:
            sx.die(f"--pickle '{args.pickle}' needs the code that wrote it ({e}); give the EDM repository with "
                   "--code-dir PATH, or export a state_dict and use --module/--state-dict")
        net = data.get("ema", data.get("net")) if isinstance(data, dict) else data
        if not isinstance(net, torch.nn.Module):
            sx.die(f"--pickle '{args.pickle}' holds no 'ema' network")
        return net.float().eval()
    if args.module:
        if args.code_dir:
            sys.path.insert(0, args.code_dir)
        cls = sx.import_class(args.module)
        try:
            kwargs = json.loads(args.kwargs or "{}")
        except json.JSONDecodeError as e:
            sx.die(f"--kwargs is not valid JSON: {e}")
        try:
            net = cls(**kwargs)
        except TypeError as e:
            sx.die(f"--module {args.module} with --kwargs {args.kwargs}: {e}")
        if not args.state_dict:
            sx.die("--module needs --state-dict FILE (the trained weights)")
        sx.load_weights(net, sx.load_state_dict(args.state_dict), args.state_dict)
        return net.float().eval()
    if not (args.random_init or args.state_dict):
        sx.die("give the network: --pickle FILE, --module pkg.mod:Class --state-dict FILE, "
               "--state-dict FILE (stand-in architecture) or --random-init")
    torch.manual_seed(args.seed)
    cls = STAND_INS[args.precond]
    net = cls(args.img_resolution, args.img_channels, args.label_dim)
    if args.state_dict:
        sx.load_weights(net, sx.load_state_dict(args.state_dict), args.state_dict)
    return net.eval()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pickle", help="EDM network snapshot (.pkl); needs the EDM code (--code-dir)")
    p.add_argument("--code-dir", help="folder to put on sys.path first (e.g. a clone of NVlabs/edm)")
    p.add_argument("--module", help="package.module:Class of a preconditioned network")
    p.add_argument("--kwargs", help="JSON keyword arguments for --module")
    p.add_argument("--state-dict", help="weights (torch.save state dict, or .npz) for --module or the stand-in")
    p.add_argument("--out", required=True, help="TorchScript archive to write")
    p.add_argument("--ref", help="also write x, sigma, labels, denoised (the reference D) as .npz")
    p.add_argument("--shape", help="C,H,W (default: img_channels, img_resolution of the network)")
    p.add_argument("--num-classes", type=int, help="class labels (default: the network's label_dim)")
    p.add_argument("--sigma-range", help="sigma_min,sigma_max (default: the network's, else 0.002,80)")
    p.add_argument("--data-range", default="-1,1", help="data range lo,hi (default -1,1)")
    p.add_argument("--random-init", action="store_true", help="export the randomly initialised stand-in")
    p.add_argument("--save-state-dict", help="stand-in: also save its state dict here (for tests)")
    p.add_argument("--precond", choices=sorted(STAND_INS), default="edm", help="stand-in preconditioning")
    p.add_argument("--img-resolution", type=int, default=16, help="stand-in: image size")
    p.add_argument("--img-channels", type=int, default=3, help="stand-in: channels")
    p.add_argument("--label-dim", type=int, default=0, help="stand-in: classes (0: unconditional)")
    p.add_argument("--seed", type=int, default=0, help="stand-in: initialisation seed")
    args = p.parse_args()

    net = load_network(args)
    if args.save_state_dict:
        torch.save(net.state_dict(), args.save_state_dict)
    res, chans = getattr(net, "img_resolution", None), getattr(net, "img_channels", None)
    if args.shape:
        shape = sx.parse_ints(args.shape, "--shape", 3)
    elif res is None or chans is None:
        sx.die("the network has no img_resolution/img_channels attributes; give --shape C,H,W")
    else:
        shape = [int(chans), int(res), int(res)]
    sx.check_spatial(args.out, shape, res, "img_resolution")
    label_dim = int(getattr(net, "label_dim", 0) or 0)
    num_classes = label_dim if args.num_classes is None else args.num_classes
    if num_classes < 0:
        sx.die(f"--num-classes must be >= 0, got {num_classes}")
    if num_classes != label_dim:
        sx.fail_export(args.out, f"num_classes: --num-classes {num_classes} but the network has label_dim {label_dim}")

    kind = type(net).__name__
    if args.sigma_range:
        smin, smax = (float(v) for v in args.sigma_range.split(","))
    else:
        smin, smax = float(getattr(net, "sigma_min", 0) or 0), float(getattr(net, "sigma_max", math.inf))
        smin = smin if smin > 0 else 0.002
        smax = smax if math.isfinite(smax) else 80.0
    if not 0 < smin < smax:
        sx.die(f"sigma range {smin}..{smax} is not 0 < sigma_min < sigma_max")
    schedule = {"type": "ve" if kind.startswith("VE") else "edm", "sigma_min": smin, "sigma_max": smax}
    if hasattr(net, "sigma_data") and schedule["type"] == "edm":
        schedule["sigma_data"] = float(net.sigma_data)
    meta = {
        "prediction": "x0",
        "schedule": schedule,
        "time_input": "sigma",
        "shape": shape,
        "data_range": sx.parse_range(args.data_range),
        "num_classes": int(num_classes),
        "head": "none",
        "name": f"EDM {kind}" + (" (random stand-in)" if args.random_init else ""),
        "description": "exported by scripts/export_edm.py: forward(x, sigma[, y]) = net(x, sigma, one_hot(y))",
    }
    wrapper = Exported(net, num_classes).eval()

    def reference(x, sigma, labels):
        """The original network, called the way EDM's samplers call it."""
        s = torch.full((x.shape[0],), sigma, dtype=torch.float64)
        if num_classes == 0:
            return net(x, s)
        return net(x, s, torch.nn.functional.one_hot(labels, num_classes).to(torch.float32))

    lo, hi = math.log(smin), math.log(smax)
    sigmas = [float(np.exp(lo + f * (hi - lo))) for f in (0.2, 0.5, 0.8)]
    sx.export(args.out, wrapper, meta, reference, sigmas, shape[0], "img_channels", ref_path=args.ref)


if __name__ == "__main__":
    main()
