#!/usr/bin/env python3
"""Encodes text prompts with a `transformers` CLIP text encoder into scoreflow conditioning files:
`context` [P, 77, D] (the encoder's last hidden state, what Stable Diffusion's UNet cross-attends to)
and, with --pooled, `pooled` [P, D'] (the pooled / projected text embedding), one row per prompt; and
--uncond-out, the same arrays for the empty prompt "" (or --negative), the unconditional input of
classifier-free guidance.

It needs the transformers package, which is not installable on scoreflow's CI machines; on a machine
that has it (pip install torch transformers) and a Stable Diffusion pipeline folder:

    python3 scripts/encode_prompts.py --pipeline stable-diffusion-v1-5 --prompts prompts.txt \\
        --out prompts.npz --uncond-out uncond.npz
    python3 scripts/export_latent.py sd --pipeline stable-diffusion-v1-5 --uncond uncond.npz --out sd15.pt
    scoreflow sample --model sd15.pt --cond prompts.npz --guidance 7.5 --seeds 0-7 --out sd.png

--pipeline reads PIPE/tokenizer and PIPE/text_encoder; --tokenizer and --text-encoder name them
separately (folders or hub names, e.g. openai/clip-vit-large-patch14 for SD 1.x). prompts.txt holds
one prompt per line; --prompt (repeatable) gives them on the command line. The default
--hidden-layer -1 (last hidden state) is right for SD 1.x and for the diffusers SD 2.x folders, whose
text_encoder is already cut to OpenCLIP-ViT-H's penultimate layer; -2 ("clip skip") takes an earlier
layer, passed through the final layer norm.

The output is float32; row i of every array belongs to prompt i, so `scoreflow sample` draws sample i
with prompt i mod P. Self-check: the npz is reloaded and compared with the encoder's output, and the
row count and shapes are printed for the model's metadata ("conditions": [{"name": "context",
"shape": [77, D]}]).
"""
import argparse
import os
import sys

import numpy as np


def die(msg):
    sys.exit(f"error: {msg}")


def read_prompts(args):
    prompts = list(args.prompt or [])
    if args.prompts:
        if not os.path.isfile(args.prompts):
            die(f"--prompts '{args.prompts}' does not exist")
        with open(args.prompts, encoding="utf-8") as f:
            prompts += [line.rstrip("\n") for line in f if line.strip()]
    if not prompts:
        die("no prompts: give --prompts FILE (one per line) or --prompt TEXT")
    return prompts


def save_npz(path, arrays):
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    with np.load(path) as z:  # self-check: what was written is what the encoder gave
        for k, v in arrays.items():
            if k not in z.files or z[k].shape != v.shape or not np.array_equal(z[k], v):
                os.remove(path)
                die(f"self-check failed: array '{k}' of {path} does not read back as written")
    print(f"wrote {path}: " + ", ".join(f"{k} {list(v.shape)} {v.dtype}" for k, v in arrays.items()))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pipeline", help="Stable Diffusion folder with tokenizer/ and text_encoder/")
    p.add_argument("--tokenizer", help="tokenizer folder or hub name (default: PIPELINE/tokenizer)")
    p.add_argument("--text-encoder", help="CLIP text encoder folder or hub name (default: PIPELINE/text_encoder)")
    p.add_argument("--prompts", help="text file, one prompt per line")
    p.add_argument("--prompt", action="append", help="a prompt (repeatable)")
    p.add_argument("--out", required=True, help="npz with `context` (and `pooled`) for the prompts")
    p.add_argument("--uncond-out", help="npz with the same arrays for the empty prompt (or --negative)")
    p.add_argument("--negative", default="", help="the unconditional prompt (default: the empty prompt)")
    p.add_argument("--pooled", action="store_true", help="also write `pooled` (pooler output / text_embeds)")
    p.add_argument("--hidden-layer", type=int, default=-1, help="hidden state to use (-1: last, -2: penultimate)")
    p.add_argument("--max-length", type=int, help="tokens (default: the tokenizer's model_max_length, 77)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=16)
    args = p.parse_args()

    prompts = read_prompts(args)
    try:
        import torch
        import transformers
    except ImportError as e:
        die(f"encode_prompts.py needs torch and transformers ({e}); they are not installable here. On a machine "
            "with them: pip install torch transformers, then run the command in this script's --help")
    tok_path = args.tokenizer or (args.pipeline and os.path.join(args.pipeline, "tokenizer"))
    enc_path = args.text_encoder or (args.pipeline and os.path.join(args.pipeline, "text_encoder"))
    if not tok_path or not enc_path:
        die("give --pipeline DIR, or --tokenizer and --text-encoder")
    tokenizer = transformers.AutoTokenizer.from_pretrained(tok_path)
    if args.pooled:
        try:
            encoder = transformers.CLIPTextModelWithProjection.from_pretrained(enc_path)
        except (OSError, ValueError):
            encoder = transformers.CLIPTextModel.from_pretrained(enc_path)
    else:
        encoder = transformers.CLIPTextModel.from_pretrained(enc_path)
    encoder = encoder.float().eval().to(args.device)
    length = args.max_length or min(int(getattr(tokenizer, "model_max_length", 77)), 77)

    @torch.no_grad()
    def encode(texts):
        ctx, pooled = [], []
        for i in range(0, len(texts), args.batch):
            ids = tokenizer(texts[i:i + args.batch], padding="max_length", max_length=length, truncation=True,
                            return_tensors="pt").input_ids.to(args.device)
            out = encoder(ids, output_hidden_states=args.hidden_layer != -1)
            if args.hidden_layer == -1:
                h = out.last_hidden_state
            else:  # an earlier layer goes through the final layer norm, as SD 2.x / SDXL pipelines do
                h = encoder.text_model.final_layer_norm(out.hidden_states[args.hidden_layer]) \
                    if hasattr(encoder, "text_model") else out.hidden_states[args.hidden_layer]
            ctx.append(h.float().cpu().numpy())
            if args.pooled:
                pv = getattr(out, "text_embeds", None)
                pv = out.pooler_output if pv is None else pv
                pooled.append(pv.float().cpu().numpy())
        arrays = {"context": np.ascontiguousarray(np.concatenate(ctx), dtype=np.float32)}
        if args.pooled:
            arrays["pooled"] = np.ascontiguousarray(np.concatenate(pooled), dtype=np.float32)
        if not all(np.isfinite(v).all() for v in arrays.values()):
            die("the text encoder gave NaN or Inf")
        return arrays

    arrays = encode(prompts)
    save_npz(args.out, arrays)
    if args.uncond_out:
        save_npz(args.uncond_out, encode([args.negative]))
    shapes = ", ".join(f'{{"name": "{k}", "shape": {list(v.shape[1:])}}}' for k, v in arrays.items())
    print(f"{len(prompts)} prompts; the model's metadata should declare \"conditions\": [{shapes}]")


if __name__ == "__main__":
    main()
