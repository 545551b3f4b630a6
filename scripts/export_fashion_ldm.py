#!/usr/bin/env python3
"""Exports the conditional latent Fashion-MNIST demo (weights from scripts/train_fashion_ldm.py) as one
scoreflow model, its caption embeddings, and the classifier that measures it.

Run with Debian's /usr/bin/python3 (torch 1.13) so the archives load in LibTorch 1.13:

    /usr/bin/python3 scripts/export_fashion_ldm.py --weights DIR/fashion_ldm.npz \\
        --classifier DIR/fashion_classifier.npz --out models/fashion_ldm.pt \\
        --prompts models/fashion_prompts.npz --uncond models/fashion_uncond.npz \\
        --classifier-out models/fashion_classifier.pt

(DIR is train_fashion_ldm.py's --out; its fashion_ldm.json, next to the weights, gives the latent scale.)

models/fashion_ldm.pt holds
  forward(x, sigma, context) -> D(x, sigma): x [B, 4, 8, 8] scaled latents plus sigma * noise,
      sigma [B], context [B, 4, 32]; EDM preconditioning inside, so the metadata says prediction x0,
      schedule edm (sigma_data 1), time_input sigma;
  decode(z) -> images [B, 1, 32, 32] in [-1, 1] of unscaled latents (image = decode(latents / scale + shift));
  encode(images) -> scaled latents (posterior mean - shift) * scale;
  uncond_context [4, 32]: the empty caption's embedding (metadata "uncond": "stored");
and scoreflow.json with "conditions": [{"name": "context", "shape": [4, 32]}], "decoder", "encoder".
--prompts gets `context` [10, 4, 32] (row i = caption i = Fashion-MNIST class i), --uncond the empty
caption's row [1, 4, 32]. --classifier-out gets forward(images [B, 1, 32, 32] in [-1, 1]) -> logits [B, 10]
and features(images) -> [B, 128].

Self-check (any failure deletes what was written and exits with one error: line): the reloaded archive's
forward, decode and encode equal the eager modules to 1e-5; the stored metadata and uncond_context
round-trip; decode(encode(x)) reconstructs Fashion-MNIST test images (mean |error| at most
--max-recon-mae); the graphs use no operator LibTorch 1.13 lacks.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fashion_data  # noqa: E402
import scoreflow_export as sx  # noqa: E402
import train_fashion_ldm as tl  # noqa: E402
import train_features  # noqa: E402

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


class FashionLDM(nn.Module):
    """What scoreflow loads: the denoiser as forward, the VAE as decode/encode, the stored uncond row."""

    def __init__(self, den: tl.Denoiser, vae: tl.VAE, scale: float, shift: float, uncond: torch.Tensor):
        super().__init__()
        self.den = den
        self.vae = vae
        self.scale = scale
        self.shift = shift
        self.register_buffer("uncond_context", uncond.clone())

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.den(x, t, context)

    @torch.jit.export
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z)

    @torch.jit.export
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        mean, _ = self.vae.moments(x)
        return (mean - self.shift) * self.scale


class Classifier(nn.Module):
    def __init__(self, net: train_features.FeatureNet):
        super().__init__()
        self.body = net.body
        self.fc = net.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x).mean(dim=(2, 3)))

    @torch.jit.export
    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))


def metadata(scale: float, shift: float, data_range, hp: dict) -> dict:
    captions = hp.get("captions", tl.CAPTIONS)
    return {
        "prediction": "x0",
        "schedule": {"type": "edm", "sigma_min": 0.002, "sigma_max": 80.0, "sigma_data": tl.SIGMA_DATA},
        "time_input": "sigma",
        "shape": [tl.UNET_ARCH["latent_ch"], 8, 8],
        "data_range": data_range,
        "num_classes": 0,
        "head": "none",
        "name": "fashion_ldm",
        "description": "Fashion-MNIST latent diffusion demo (scripts/train_fashion_ldm.py): EDM denoiser on "
                       "4x8x8 VAE latents, cross-attention on caption token embeddings; rows of "
                       "models/fashion_prompts.npz: " + "; ".join(f"{i}: {c}" for i, c in enumerate(captions)),
        "conditions": [{"name": "context", "shape": [tl.TOKENS, tl.TOKEN_DIM]}],
        "uncond": "stored",
        "decoder": {"method": "decode", "scale": scale, "shift": shift, "image_shape": [1, 32, 32],
                    "image_range": [-1, 1]},
        "encoder": {"method": "encode"},
    }


def fail(paths, msg):
    for p in paths:
        for q in (p, p + ".tmp"):
            if q and os.path.exists(q):
                os.remove(q)
    sx.die(f"export self-check failed: {msg}")


def newer_ops(module, methods):
    found = set()
    for name in methods:
        found |= {n.kind() for n in getattr(module, name).inlined_graph.nodes()}
    return sorted(found & sx.OPS_NEWER_THAN_1_13)


def save_npz(path, **arrays):
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def test_images(n: int, data: str):
    """n Fashion-MNIST test images in [-1, 1] (idx.gz folder, or prepare_gpujob.sh's npy folder)."""
    split = tl.load_split("test", data) or tl.load_split("train", data)
    return torch.from_numpy(np.ascontiguousarray(split[0][:n])), torch.from_numpy(split[1][:n])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="fashion_ldm.npz written by train_fashion_ldm.py")
    p.add_argument("--hparams", help="its fashion_ldm.json (default: next to --weights)")
    p.add_argument("--out", required=True, help="TorchScript archive to write (models/fashion_ldm.pt)")
    p.add_argument("--prompts", help="write the 10 captions' context rows here (models/fashion_prompts.npz)")
    p.add_argument("--uncond", help="write the empty caption's context row here (models/fashion_uncond.npz)")
    p.add_argument("--classifier", help="fashion_classifier.npz written by train_fashion_ldm.py")
    p.add_argument("--classifier-out", help="TorchScript classifier to write (models/fashion_classifier.pt)")
    p.add_argument("--ref", help="also write a reference batch (x, sigma, context, denoised, z, decoded) .npz")
    p.add_argument("--data", help="Fashion-MNIST folder for the reconstruction check (default: Debian's)")
    p.add_argument("--max-recon-mae", type=float, default=0.1,
                   help="largest mean |decode(encode(x)) - x| accepted on test images (default 0.1)")
    args = p.parse_args()
    torch.set_num_threads(min(4, torch.get_num_threads()))

    sx.require_file(args.weights, "--weights")
    hp_path = args.hparams or os.path.join(os.path.dirname(os.path.abspath(args.weights)), "fashion_ldm.json")
    sx.require_file(hp_path, "--hparams")
    with open(hp_path) as f:
        hp = json.load(f)
    if hp.get("vae_arch") != tl.VAE_ARCH or hp.get("unet_arch") != tl.UNET_ARCH:
        sx.die(f"{hp_path} was written for another architecture (vae {hp.get('vae_arch')}, unet "
               f"{hp.get('unet_arch')}) than this script builds ({tl.VAE_ARCH}, {tl.UNET_ARCH})")
    if hp.get("smoke"):
        print("warning: these weights come from a --smoke run", file=sys.stderr)
    scale, shift = float(hp["latent_scale"]), float(hp.get("latent_shift", 0.0))
    bound = float(np.ceil(max(1.0, hp.get("latent_absmax_scaled", 4.0))))

    with np.load(args.weights) as z:
        arrays = {k: torch.from_numpy(z[k]) for k in z.files}
    if "context_table" not in arrays or not any(k.startswith("unet.") for k in arrays):
        sx.die(f"--weights '{args.weights}' lacks context_table or unet.* arrays (training did not finish?)")
    table = arrays["context_table"].float()
    if list(table.shape) != [11, tl.TOKENS, tl.TOKEN_DIM]:
        sx.die(f"context_table has shape {list(table.shape)}, expected [11, {tl.TOKENS}, {tl.TOKEN_DIM}]")
    vae, unet = tl.build_vae(), tl.build_unet()
    sx.load_weights(vae, {k[4:]: v for k, v in arrays.items() if k.startswith("vae.")}, args.weights)
    sx.load_weights(unet, {k[5:]: v for k, v in arrays.items() if k.startswith("unet.")}, args.weights)
    vae.eval()
    den = tl.Denoiser(unet).eval()
    model = FashionLDM(den, vae, scale, shift, table[10]).eval()
    meta = metadata(scale, shift, [-bound, bound], hp)

    written = [args.out]
    tmp = args.out + ".tmp"
    scripted = torch.jit.script(model)
    ops = newer_ops(scripted, ["forward", "decode", "encode"])
    if ops:
        fail(written, f"ops: the network uses {', '.join(ops)}, which LibTorch 1.13 does not have")
    torch.jit.save(scripted, tmp, _extra_files={"scoreflow.json": json.dumps(meta)})

    # ---- self-check on the reloaded archive ----
    files = {"scoreflow.json": ""}
    m = torch.jit.load(tmp, map_location="cpu", _extra_files=files)
    if json.loads(files["scoreflow.json"]) != meta:
        fail(written, f"metadata: stored {files['scoreflow.json']} differs from {meta}")
    if not torch.equal(m.uncond_context, table[10]):
        fail(written, "uncond_context of the reloaded archive differs from the empty caption's row")
    g = torch.Generator().manual_seed(3)
    xs, ss, cs, ds = [], [], [], []
    with torch.no_grad():
        for sigma in (0.02, 0.3, 1.0, 5.0, 60.0):
            rows = torch.tensor([0, 5, 9, 10])
            ctx = table[rows]
            x = torch.randn(4, *meta["shape"], generator=g) + sigma * torch.randn(4, *meta["shape"], generator=g)
            s = torch.full((4,), sigma)
            got, want = m(x, s, ctx), den(x, s, ctx)
            err = (got - want).abs().max().item()
            if not err <= 1e-5 * max(1.0, want.abs().max().item()):
                fail(written, f"D(x, sigma={sigma}) of the reloaded archive differs from the eager module by {err:.3g}")
            xs.append(x), ss.append(s), cs.append(ctx), ds.append(want)
        # conditioning reaches D: the captions give different denoised latents at a moderate sigma
        x = torch.randn(10, *meta["shape"], generator=g)
        dc = m(x, torch.full((10,), 1.0), table[:10])
        du = m(x, torch.full((10,), 1.0), table[10:].expand(10, -1, -1))
        if not hp.get("smoke") and (dc - du).abs().max().item() < 1e-4:
            fail(written, "the denoiser's output does not depend on the caption")
        imgs, labels = test_images(64, args.data)
        zs = m.encode(imgs)
        z_eager = model.encode(imgs)
        dec = m.decode(zs / scale + shift)
        dec_eager = vae.decode(z_eager / scale + shift)
        e1, e2 = (zs - z_eager).abs().max().item(), (dec - dec_eager).abs().max().item()
        if e1 > 1e-5 or e2 > 1e-5:
            fail(written, f"encode/decode of the reloaded archive differ from the eager VAE by {e1:.3g} / {e2:.3g}")
        if list(zs.shape) != [64] + meta["shape"] or list(dec.shape) != [64, 1, 32, 32]:
            fail(written, f"encode gives {list(zs.shape)}, decode {list(dec.shape)}; metadata says "
                          f"{meta['shape']} and [1, 32, 32]")
        mae = (dec.clamp(-1, 1) - imgs).abs().mean().item()
        if not mae <= args.max_recon_mae:
            fail(written, f"decode(encode(x)) reconstructs test images with mean |error| {mae:.4f} "
                          f"> --max-recon-mae {args.max_recon_mae}")
        zstd = zs.std().item()
    os.replace(tmp, args.out)
    size = os.path.getsize(args.out)
    print(f"exported {args.out} ({size / 2**20:.2f} MiB; vae {tl.n_params(vae)}, unet {tl.n_params(unet)} parameters); "
          f"self-check passed: D parity at 5 sigmas, decode(encode(x)) mean |error| {mae:.4f}, "
          f"encoded test latents std {zstd:.3f}")
    print(json.dumps(meta))

    if args.prompts:
        save_npz(args.prompts, context=table[:10].numpy())
        print(f"wrote {args.prompts}: context {list(table[:10].shape)} (row i = class i: "
              + ", ".join(hp.get("captions", tl.CAPTIONS)) + ")")
    if args.uncond:
        save_npz(args.uncond, context=table[10:].numpy())
        print(f"wrote {args.uncond}: context [1, {tl.TOKENS}, {tl.TOKEN_DIM}] (the empty caption)")
    if args.ref:
        save_npz(args.ref, x=torch.cat(xs).numpy(), sigma=torch.cat(ss).numpy(), context=torch.cat(cs).numpy(),
                 denoised=torch.cat(ds).numpy(), z=zs[:4].numpy(), decoded=dec[:4].numpy())
        print(f"wrote {args.ref}")

    if args.classifier or args.classifier_out:
        if not (args.classifier and args.classifier_out):
            sx.die("--classifier and --classifier-out go together")
        sx.require_file(args.classifier, "--classifier")
        net = train_features.FeatureNet()
        with np.load(args.classifier) as z:
            sx.load_weights(net, {k: torch.from_numpy(z[k]) for k in z.files}, args.classifier)
        clf = Classifier(net.eval()).eval()
        imgs, labels = test_images(10000, args.data)
        with torch.no_grad():
            acc = float(np.mean([(clf(imgs[i:i + 500]).argmax(1) == labels[i:i + 500]).float().mean().item()
                                 for i in range(0, imgs.shape[0], 500)]))
        cmeta = {"kind": "classifier", "input_shape": [1, 32, 32], "data_range": [-1, 1], "num_classes": 10,
                 "classes": CLASSES, "features": "features", "dim": train_features.DIM,
                 "test_accuracy": round(acc, 4), "test_images": int(imgs.shape[0])}
        ctmp = args.classifier_out + ".tmp"
        written.append(args.classifier_out)
        torch.jit.save(torch.jit.script(clf), ctmp, _extra_files={"scoreflow.json": json.dumps(cmeta)})
        files = {"scoreflow.json": ""}
        rc = torch.jit.load(ctmp, _extra_files=files)
        with torch.no_grad():
            err = (rc(imgs[:64]) - clf(imgs[:64])).abs().max().item()
        if err > 1e-5 or json.loads(files["scoreflow.json"]) != cmeta:
            fail([args.classifier_out], f"reloaded classifier differs from the eager one by {err:.3g} (or its metadata)")
        os.replace(ctmp, args.classifier_out)
        print(f"exported {args.classifier_out} ({os.path.getsize(args.classifier_out) / 2**20:.2f} MiB): "
              f"test accuracy {acc:.4f} on {imgs.shape[0]} images")


if __name__ == "__main__":
    main()
