#!/usr/bin/env python3
"""Fashion-MNIST classifier whose penultimate layer is scoreflow's feature network for Frechet distance.

Input: [B, 1, 32, 32] in [-1, 1] (28x28 padded with -1, as the demo diffusion model sees data).
Features: global average of the last conv block after ReLU, D = 128 (the role Inception's pool3 plays
in FID). Only conv, batch norm (eval), ReLU, max pool, mean and linear: loads in LibTorch 1.13.

    train (GPU or CPU):  python3 scripts/train_features.py train --device cuda --epochs 15 --out DIR
    export (torch 1.13): python3 scripts/train_features.py export --weights DIR/fashion_features.npz \\
                             --out models/fashion_features.pt --stats models/fashion_train_stats.npz \\
                             --ref models/fashion_features_ref.npz
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fashion_data  # noqa: E402

DIM = 128


def conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class FeatureNet(nn.Module):
    """32x32 -> 16 -> 8 -> 4 conv stages; features() = mean over the 4x4 map, [B, DIM]."""

    def __init__(self, dim: int = DIM, num_classes: int = 10):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(1, 32), conv_bn(32, 32), nn.MaxPool2d(2),
            conv_bn(32, 64), conv_bn(64, 64), nn.MaxPool2d(2),
            conv_bn(64, 128), conv_bn(128, dim), nn.MaxPool2d(2))
        self.fc = nn.Linear(dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.dropout(self.features(x), p=0.2, training=self.training))


class Features(nn.Module):
    """What gets exported: forward(x [B,1,32,32] in [-1,1]) -> features [B, DIM]."""

    def __init__(self, net: FeatureNet):
        super().__init__()
        self.body = net.body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))


def load_split(split, data_dir, device):
    images, labels = fashion_data.load(split, data_dir)
    return torch.from_numpy(fashion_data.to_model_range(images)).to(device), torch.from_numpy(labels).to(device)


@torch.no_grad()
def accuracy(net, x, y, batch=1000):
    net.eval()
    correct = 0
    for i in range(0, x.shape[0], batch):
        correct += (net(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / x.shape[0]


def save_npz(net, path):
    arrays = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    np.savez(path, **arrays)


def train(args):
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    x, y = load_split("train", args.data, device)
    xt, yt = load_split("test", args.data, device)
    if args.limit:
        x, y, xt, yt = x[:args.limit], y[:args.limit], xt[:args.limit], yt[:args.limit]
    net = FeatureNet().to(device)
    steps_per_epoch = x.shape[0] // args.batch
    opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.epochs * steps_per_epoch)
    t0 = time.time()
    for epoch in range(args.epochs):
        net.train()
        perm = torch.randperm(x.shape[0], device=device)
        for i in range(steps_per_epoch):
            idx = perm[i * args.batch:(i + 1) * args.batch]
            xb = x[idx]
            # Augmentation: random shifts of up to 2 pixels (pad with background) and horizontal flips.
            xb = F.pad(xb, (2, 2, 2, 2), value=-1.0)
            dx, dy = np.random.randint(0, 5, size=2)
            xb = xb[:, :, dy:dy + 32, dx:dx + 32]
            if np.random.rand() < 0.5:
                xb = xb.flip(3)
            loss = F.cross_entropy(net(xb), y[idx], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        acc = accuracy(net, xt, yt)
        print(f"epoch {epoch + 1}  loss {loss.item():.4f}  test acc {acc:.4f}  {time.time() - t0:.0f}s", flush=True)
    save_npz(net, os.path.join(args.out, "fashion_features.npz"))
    log = dict(epochs=args.epochs, batch=args.batch, lr=args.lr, seconds=round(time.time() - t0, 1),
               test_accuracy=acc, device=str(device), torch=torch.__version__,
               gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None)
    with open(os.path.join(args.out, "features_log.json"), "w") as f:
        json.dump(log, f, indent=1)
    print(json.dumps(log), flush=True)


@torch.no_grad()
def export(args):
    net = FeatureNet()
    with np.load(args.weights) as z:
        net.load_state_dict({k: torch.from_numpy(z[k]) for k in z.files})
    net.eval()
    xt, yt = load_split("test", args.data, "cpu")
    acc = accuracy(net, xt, yt)
    feat = Features(net).eval()
    scripted = torch.jit.script(feat)
    meta = {"kind": "features", "input_shape": [1, 32, 32], "data_range": [-1, 1], "dim": DIM,
            "test_accuracy": round(acc, 4)}
    tmp = args.out + ".tmp"
    torch.jit.save(scripted, tmp, _extra_files={"scoreflow.json": json.dumps(meta)})
    os.replace(tmp, args.out)

    # Self-check: reload, compare with the eager network, check the metadata against the output.
    files = {"scoreflow.json": ""}
    reloaded = torch.jit.load(args.out, _extra_files=files)
    got = json.loads(files["scoreflow.json"])
    out = reloaded(xt[:16])
    if got != meta or list(out.shape) != [16, got["dim"]]:
        os.remove(args.out)
        sys.exit(f"error: export self-check failed: metadata {got}, output shape {list(out.shape)}")
    err = (out - net.features(xt[:16])).abs().max().item()
    if err > 1e-5:
        os.remove(args.out)
        sys.exit(f"error: reloaded features differ from the eager network by {err}")
    print(f"exported {args.out}: {json.dumps(meta)}  (max |diff| {err:.2e})")

    if args.ref:
        xr = torch.randn(4, 1, 32, 32, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
        np.savez(args.ref, x=xr.numpy(), out=reloaded(xr).numpy())
        print(f"wrote {args.ref}: x [4, 1, 32, 32], out [4, {DIM}]")
    if args.stats:
        x, _ = load_split("train", args.data, "cpu")
        feats = torch.cat([reloaded(x[i:i + 1000]) for i in range(0, x.shape[0], 1000)]).double().numpy()
        mu = feats.mean(axis=0)
        sigma = np.cov(feats, rowvar=False)
        np.savez(args.stats, mu=mu, sigma=sigma)
        print(f"wrote {args.stats}: {feats.shape[0]} training images, D={feats.shape[1]}, "
              f"trace(sigma)={np.trace(sigma):.4f}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    t.add_argument("--epochs", type=int, default=15)
    t.add_argument("--batch", type=int, default=256)
    t.add_argument("--lr", type=float, default=0.1)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--limit", type=int, default=0, help="use only the first N images (smoke tests)")
    t.add_argument("--out", required=True, help="output folder (fashion_features.npz, features_log.json)")
    t.add_argument("--data", help="Fashion-MNIST folder (default: Debian's)")
    e = sub.add_parser("export")
    e.add_argument("--weights", required=True)
    e.add_argument("--out", required=True, help="TorchScript file to write")
    e.add_argument("--stats", help="also write mu/sigma of the 60k training features to this .npz")
    e.add_argument("--ref", help="also write a fixed input batch and its features (.npz) for the C++ test")
    e.add_argument("--data", help="Fashion-MNIST folder (default: Debian's)")
    args = p.parse_args()
    train(args) if args.cmd == "train" else export(args)


if __name__ == "__main__":
    main()
