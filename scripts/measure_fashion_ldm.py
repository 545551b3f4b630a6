#!/usr/bin/env python3
"""Class accuracy (and Frechet distance to the training set) of conditioned samples of the latent
Fashion-MNIST demo, one line per samples file.

    for w in 1 3 5; do
      scoreflow sample --model models/fashion_ldm.pt --cond models/fashion_prompts.npz --guidance $w \\
          --seeds 0-999 --npz g$w.npz
    done
    /usr/bin/python3 scripts/measure_fashion_ldm.py g1.npz g3.npz g5.npz [--json results.json]

Each npz is scoreflow's `sample --npz` output: `images` (uint8 NHWC, decoded) and the caption row each
sample used (`cond_rows`; without it, seed mod 10, which is what --cond with 10 rows and no --cond-rows
gives). Row i of models/fashion_prompts.npz is Fashion-MNIST class i, so the classifier
(models/fashion_classifier.pt, written by scripts/export_fashion_ldm.py) should answer i. The Frechet
distance uses models/fashion_features.pt and models/fashion_train_stats.npz (the 60k training images),
as `scoreflow eval fid` does; it is meaningful from a few thousand samples on.
"""
import argparse
import json
import os
import re
import sys

import numpy as np
import torch


def die(msg):
    sys.exit(f"error: {msg}")


def guidance_of(path, meta):
    for key in ("guidance",):
        if key in meta:
            return meta[key]
    m = re.search(r"g(?:uidance)?[_-]?(\d+(?:\.\d+)?)", os.path.basename(path))
    return float(m.group(1)) if m else None


def load_samples(path, num_rows):
    if not os.path.isfile(path):
        die(f"samples file '{path}' does not exist")
    with np.load(path) as z:
        if "images" not in z.files:
            die(f"{path} has no 'images' array (decoded uint8 NHWC); arrays: {', '.join(z.files)}")
        images = z["images"]
        if "cond_rows" in z.files:
            rows = z["cond_rows"].astype(np.int64).reshape(-1)
        elif "seeds" in z.files:
            rows = z["seeds"].astype(np.int64).reshape(-1) % num_rows
            print(f"note: {path} has no cond_rows; assuming row = seed mod {num_rows}", file=sys.stderr)
        else:
            die(f"{path} has neither cond_rows nor seeds: cannot tell which caption each sample had")
    if images.ndim != 4 or images.shape[1:] != (32, 32, 1) or images.dtype != np.uint8:
        die(f"{path}: images must be uint8 [N, 32, 32, 1], got {images.dtype} {list(images.shape)}")
    if rows.shape[0] != images.shape[0]:
        die(f"{path}: {images.shape[0]} images but {rows.shape[0]} rows")
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0)
    return x, torch.from_numpy(rows)


def frechet(mu1, s1, mu2, s2):
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), float64, symmetric eigendecompositions."""
    w, v = np.linalg.eigh(s1)
    r1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    w2 = np.linalg.eigvalsh(r1 @ s2 @ r1)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(w2, 0, None)).sum())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("samples", nargs="+", help="npz files from scoreflow sample --npz")
    p.add_argument("--classifier", default="models/fashion_classifier.pt")
    p.add_argument("--features", default="models/fashion_features.pt", help="'' to skip the Frechet distance")
    p.add_argument("--train-stats", default="models/fashion_train_stats.npz")
    p.add_argument("--rows", type=int, default=10, help="rows of the cond file (row i = class i mod 10)")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    torch.set_num_threads(min(4, torch.get_num_threads()))

    if not os.path.isfile(args.classifier):
        die(f"--classifier '{args.classifier}' does not exist (scripts/export_fashion_ldm.py --classifier-out writes it)")
    clf = torch.jit.load(args.classifier, map_location="cpu").eval()
    feats = None
    if args.features:
        if not (os.path.isfile(args.features) and os.path.isfile(args.train_stats)):
            die(f"--features '{args.features}' or --train-stats '{args.train_stats}' does not exist ('' skips FD)")
        feats = torch.jit.load(args.features, map_location="cpu").eval()
        with np.load(args.train_stats) as z:
            mu_ref, sig_ref = z["mu"].astype(np.float64), z["sigma"].astype(np.float64)

    results = []
    print(f"{'file':<28} {'guidance':>8} {'samples':>7} {'accuracy':>8}  per class")
    for path in args.samples:
        with np.load(path) as z:
            meta = {}
            for k in ("json", "settings"):
                if k in z.files:
                    try:
                        meta = json.loads(str(z[k]))
                    except ValueError:
                        pass
        x, rows = load_samples(path, args.rows)
        target = rows % 10
        with torch.no_grad():
            pred = torch.cat([clf(x[i:i + 500]).argmax(1) for i in range(0, x.shape[0], 500)])
            f = None if feats is None else torch.cat([feats(x[i:i + 500]) for i in range(0, x.shape[0], 500)])
        hit = (pred == target).double()
        per_class = [round(hit[target == c].mean().item(), 3) if (target == c).any() else None for c in range(10)]
        res = dict(file=path, guidance=guidance_of(path, meta), samples=int(x.shape[0]), accuracy=hit.mean().item(),
                   per_class_accuracy=per_class)
        if f is not None:
            fd = f.double().numpy()
            res["fd_train"] = frechet(fd.mean(0), np.cov(fd, rowvar=False), mu_ref, sig_ref) if fd.shape[0] > 1 else None
        results.append(res)
        fd_text = f"  FD {res['fd_train']:.3f}" if res.get("fd_train") is not None else ""
        print(f"{os.path.basename(path):<28} {str(res['guidance']):>8} {res['samples']:>7} {res['accuracy']:>8.3f}  "
              + " ".join("-" if a is None else f"{a:.2f}" for a in per_class) + fd_text)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(classifier=args.classifier, results=results), fh, indent=1)


if __name__ == "__main__":
    main()
