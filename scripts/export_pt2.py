#!/usr/bin/env python3
"""Exports a network as a torch.export + AOTInductor package (.pt2) that scoreflow loads when it is
built against LibTorch >= 2.6 (models/aoti_model.cpp; a LibTorch 1.13 build refuses .pt2 files).
Needs PyTorch >= 2.6 here too; this script cannot run under Debian's torch 1.13.

The package holds one compiled graph `forward(x_t, t[, y], cond_1, ..., cond_n)` with a dynamic batch
dimension on every input (1..--max-batch), compiled for one device (--device cpu|cuda), float32; the
conditions are the metadata's `conditions`, in order, with example inputs of their declared shapes and
dtypes. A package holds forward alone: `decoder`/`encoder` are dropped from its metadata (decode with the
TorchScript archive: scoreflow sample --decoder MODEL.pt), and a stored unconditional value
(`"uncond": "stored"`) is written to OUT.uncond.npz instead (give it as --uncond). The scoreflow metadata
(docs/design.md section 3, without `features`: a package carries forward alone) goes into the package's
own metadata (key "scoreflow.json") when this PyTorch accepts it, and always into the sidecar file
OUT.json next to it (keep the two together). After writing, the package is reloaded and scoreflow's
D(x, sigma) from it is compared with D from the eager module at three sigmas (scripts/scoreflow_export.py);
on a mismatch both files are deleted and the script exits with one `error:` line. If torch's own package
loader crashes during that reload (seen with PyTorch 2.11), the package is kept with a `warning:` that it
is unchecked. `--device cpu` compiles with Inductor's freezing by default (--freeze), and with the
thread count of the process that runs the package rather than of this one.

  # the shipped demo model: its eager architecture (scripts/train_demo.py) with the weights and
  # metadata of the TorchScript file
  python3 scripts/export_pt2.py --demo models/fashion_ddpm.pt --out fashion_ddpm.pt2 --device cuda
  # the shipped conditional latent demo's denoiser (scripts/train_fashion_ldm.py's Denoiser)
  python3 scripts/export_pt2.py --ldm models/fashion_ldm.pt --out fashion_ldm.pt2 --device cuda
  # any module with forward(x, t[, y]): its class, constructor arguments, weights and metadata
  python3 scripts/export_pt2.py --module pkg.mod:Class --kwargs '{"ch": 64}' --state-dict W.pt \\
      --meta meta.json --out net.pt2 --device cuda
"""
import argparse
import faulthandler
import json
import os
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scoreflow_export as sx  # noqa: E402

MIN_TORCH = (2, 6)


def torch_version():
    parts = torch.__version__.split("+")[0].split(".")
    return tuple(int("".join(c for c in p if c.isdigit()) or 0) for p in parts[:2])


def require_torch():
    if torch_version() < MIN_TORCH:
        sx.die(f"export_pt2.py needs PyTorch >= {MIN_TORCH[0]}.{MIN_TORCH[1]} (torch.export with dynamic shapes and "
               f"torch._inductor.aoti_compile_and_package); this is torch {torch.__version__}")


def demo_eager(pt_path: str):
    """The demo model's eager network (scripts/train_demo.py) with the weights and metadata of the
    TorchScript file `pt_path` (written by scripts/export_demo.py)."""
    import train_demo  # noqa: E402  (scripts/ is on sys.path)
    extra = {"scoreflow.json": ""}
    scripted = torch.jit.load(pt_path, map_location="cpu", _extra_files=extra)
    meta = json.loads(extra["scoreflow.json"])
    state = scripted.state_dict()
    net = train_demo.build(eps2_head=any(k.startswith("head.") for k in state))
    sx.load_weights(net, state, pt_path)
    return net.eval(), meta


DTYPES = {"float32": torch.float32, "int64": torch.long, "int32": torch.int32}


def condition_inputs(meta: dict, batch: int, generator=None, device="cpu"):
    """One example tensor per metadata condition, [batch, ...shape] in its dtype (float: normal draws,
    integer: small non-negative values)."""
    out = []
    for c in meta.get("conditions", []):
        dtype = DTYPES[c.get("dtype", "float32")]
        if dtype == torch.float32:
            v = torch.randn(batch, *c["shape"], generator=generator)
        else:
            v = torch.randint(0, 4, (batch, *c["shape"]), generator=generator).to(dtype)
        out.append(v.to(device))
    return out


def ldm_eager(pt_path: str):
    """The conditional latent demo's denoiser (scripts/train_fashion_ldm.py's Denoiser) with the
    weights, metadata and stored unconditional values of the TorchScript file `pt_path`
    (scripts/export_fashion_ldm.py: forward(x, sigma, context) is den)."""
    import train_fashion_ldm as tl  # noqa: E402  (scripts/ is on sys.path)
    extra = {"scoreflow.json": ""}
    scripted = torch.jit.load(pt_path, map_location="cpu", _extra_files=extra)
    meta = json.loads(extra["scoreflow.json"])
    state = scripted.state_dict()
    den = tl.Denoiser(tl.build_unet())
    sx.load_weights(den, {k[4:]: v for k, v in state.items() if k.startswith("den.")}, pt_path)
    uncond = None
    if meta.get("uncond") == "stored":
        uncond = {c["name"]: getattr(scripted, "uncond_" + c["name"]).detach() for c in meta["conditions"]}
    return den.eval(), meta, uncond


def export_pt2(net: torch.nn.Module, meta: dict, out: str, device: str, max_batch: int = 1024, uncond=None,
               freeze: str = "auto"):
    """Exports `net` (eval mode, forward(x, t[, y], cond...)) to the package `out` plus the sidecar
    `out`.json, reloads it and checks D against the eager module. `uncond` (name -> tensor), for a
    metadata "uncond": "stored", goes to `out`.uncond.npz. `freeze` ("auto": on for the CPU, "on",
    "off") compiles with Inductor's freezing: the weights become constants, so convolutions and linear
    layers run oneDNN kernels on weights packed once at compile time. Returns the path."""
    require_torch()
    from torch.export import Dim, export  # noqa: E402

    dropped = [k for k in ("features", "decoder", "encoder") if k in meta]
    meta = {k: v for k, v in meta.items() if k not in ("features", "decoder", "encoder")}
    if dropped:
        print(f"note: {', '.join(dropped)} dropped from the package's metadata (a package holds forward alone)",
              file=sys.stderr)
    if meta.get("uncond") == "stored":
        if not uncond:
            sx.die("metadata 'uncond' is 'stored' but no stored values were given; a package cannot hold them")
        import numpy as np  # noqa: E402
        arrays = {c["name"]: uncond[c["name"]].detach().cpu().reshape(1, *c["shape"]).numpy()
                  for c in meta["conditions"]}
        np.savez(out + ".uncond.npz", **arrays)
        print(f"note: the stored unconditional values went to {out}.uncond.npz; give it as --uncond",
              file=sys.stderr)
        meta = {k: v for k, v in meta.items() if k != "uncond"}
    dev = torch.device(device)
    net = net.eval().to(dev)
    shape = meta["shape"]
    classes = meta.get("num_classes", 0)
    # Example batch 2 (torch.export specialises a dimension whose example size is 0 or 1).
    x = torch.randn(2, *shape, device=dev)
    t = torch.full((2,), 0.5, device=dev)
    conds = condition_inputs(meta, 2, device=dev)
    args = (x, t) + ((torch.zeros(2, dtype=torch.long, device=dev),) if classes > 0 else ()) + tuple(conds)
    batch = Dim("batch", min=1, max=max_batch)
    dynamic = ({0: batch}, {0: batch}) + (({0: batch},) if classes > 0 else ()) + tuple({0: batch} for _ in conds)
    with torch.no_grad():
        program = export(net, args, dynamic_shapes=dynamic)
    meta_json = json.dumps(meta)
    if freeze not in ("auto", "on", "off"):
        sx.die(f"--freeze must be auto, on or off, got '{freeze}'")
    base = {"freezing": True} if freeze == "on" or (freeze == "auto" and dev.type == "cpu") else {}
    if dev.type == "cpu" and hasattr(torch._inductor.config.cpp, "dynamic_threads"):
        # The generated loops take the thread count of the process that runs them, not of this one: a
        # 16-thread package run with 8 threads took 3.8-6.5x as long with the count fixed and 1.4-1.5x with
        # it taken at run time, and as long as the fixed one at 16 (PyTorch 2.11; docs/performance.md).
        base["cpp.dynamic_threads"] = True
    for configs in ({**base, "aot_inductor.metadata": {"scoreflow.json": meta_json}}, base):
        try:
            path = torch._inductor.aoti_compile_and_package(program, package_path=out, inductor_configs=configs)
            break
        except Exception as e:  # an older 2.x without aot_inductor.metadata: the sidecar carries it
            if "aot_inductor.metadata" not in configs:
                raise
            print(f"note: the package's own metadata is not supported here ({str(e).splitlines()[0][:120]}); "
                  f"the metadata goes into {out}.json alone", file=sys.stderr)
    with open(out + ".json", "w") as f:
        f.write(meta_json + "\n")
    # The reload runs in a fresh interpreter: on PyTorch 2.11 + CUDA, loading the package in the
    # process that compiled it crashed with a segmentation fault inside torch's own package loader
    # (_package.py, _load_aoti), while scoreflow's C++ loader loaded the same file fine.
    cases_path = out + ".check.pt"
    torch.save(reference_cases(net, meta, dev), cases_path)
    print(f"wrote {path}; reloading it in a fresh process for the self-check", file=sys.stderr, flush=True)
    try:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--self-check", path, "--cases", cases_path,
                               "--device", str(dev)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    finally:
        os.remove(cases_path)
    if proc.returncode < 0:
        # torch's own Python package loader crashed (seen on PyTorch 2.11, CPU and CUDA) while
        # scoreflow's C++ loader runs the same file: keep the package and say it is unchecked.
        print(f"warning: the self-check could not run: torch's package loader crashed with signal {-proc.returncode} "
              f"reloading {path}; the package is kept unchecked; compare `scoreflow sample` on it with the "
              f"TorchScript file before use", file=sys.stderr)
        return path
    if proc.returncode != 0:
        for p in (out, out + ".json", out + ".uncond.npz"):
            if os.path.exists(p):
                os.remove(p)
        lines = proc.stdout.strip().splitlines()
        why = lines[-1] if lines else f"exit status {proc.returncode}"
        sx.die(f"export self-check failed: {why.removeprefix('error: ')}")
    return path


def reference_cases(net, meta: dict, dev):
    """Inputs at three sigmas (batch 3) and D(x, sigma) of the eager module for them."""
    sch = meta["schedule"]
    sigmas = [0.05, 1.0, 20.0] if sch["type"] != "vp_discrete" else [0.05, 1.0, 50.0]
    g = torch.Generator().manual_seed(3)
    labels = sx.check_labels(meta, 3)
    cases = []
    with torch.no_grad():
        for sigma in sigmas:
            x = 0.5 * torch.randn(3, *meta["shape"], generator=g) + sigma * torch.randn(3, *meta["shape"], generator=g)
            conds = condition_inputs(meta, 3, generator=g)
            d_ref = sx.scoreflow_denoise(on_device(net, dev), meta, x, sigma, labels, conds)
            cases.append({"sigma": sigma, "x": x, "labels": labels, "conds": conds, "d": d_ref})
    return {"meta": meta, "cases": cases}


def on_device(fn, dev):
    return lambda *a: fn(*(v.to(dev) for v in a)).cpu()


def self_check(path: str, cases_path: str, device: str):
    """D(x, sigma) from the package at `path` vs the eager module's values saved in `cases_path`."""
    dev = torch.device(device)
    saved = torch.load(cases_path)
    meta = saved["meta"]
    package = torch._inductor.aoti_load_package(path)
    with torch.no_grad():
        for c in saved["cases"]:
            d_pkg = sx.scoreflow_denoise(on_device(package, dev), meta, c["x"], c["sigma"], c["labels"],
                                         c.get("conds", []))
            err = (d_pkg - c["d"]).abs().max().item()
            scale = max(1.0, c["d"].abs().max().item())
            if not err <= 1e-3 * scale:  # compiled kernels reorder float32 sums
                sx.die(f"D(x, sigma={c['sigma']:.6g}) of the reloaded package differs from the eager module by {err:.3g}")


def main():
    faulthandler.enable()  # a crash inside the compiled package's loader names the Python line
    if len(sys.argv) > 1 and sys.argv[1] == "--self-check":  # the fresh process of export_pt2's reload
        q = argparse.ArgumentParser()
        q.add_argument("--self-check", required=True)
        q.add_argument("--cases", required=True)
        q.add_argument("--device", required=True)
        a = q.parse_args()
        self_check(a.self_check, a.cases, a.device)
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--demo", metavar="PT", help="the demo model's TorchScript file (weights and metadata)")
    src.add_argument("--ldm", metavar="PT", help="the conditional latent demo's TorchScript file (models/fashion_ldm.pt)")
    src.add_argument("--module", help="package.module:Class with forward(x, t[, y][, cond...])")
    p.add_argument("--kwargs", default="{}", help="constructor arguments of --module, JSON")
    p.add_argument("--state-dict", help="weights for --module (.pt/.pth/.npz)")
    p.add_argument("--meta", help="scoreflow.json metadata for --module (a JSON file)")
    p.add_argument("--out", required=True, help="the package to write (.pt2)")
    p.add_argument("--device", default="cuda", help="cpu or cuda: the device the package is compiled for")
    p.add_argument("--max-batch", type=int, default=1024, help="largest batch the package accepts")
    p.add_argument("--freeze", default="auto", help="auto (on for --device cpu), on or off: compile with Inductor's "
                   "freezing (weights as constants, oneDNN kernels on prepacked weights)")
    args = p.parse_args()
    require_torch()
    if not args.out.endswith(".pt2"):
        sx.die(f"--out '{args.out}' must end in .pt2 (scoreflow recognises packages by the extension)")
    uncond = None
    if args.demo:
        sx.require_file(args.demo, "--demo")
        net, meta = demo_eager(args.demo)
    elif args.ldm:
        sx.require_file(args.ldm, "--ldm")
        net, meta, uncond = ldm_eager(args.ldm)
    else:
        sx.require_file(args.meta, "--meta")
        with open(args.meta) as f:
            meta = json.load(f)
        net = sx.import_class(args.module)(**json.loads(args.kwargs))
        if args.state_dict:
            sx.load_weights(net, sx.load_state_dict(args.state_dict), args.state_dict)
    path = export_pt2(net, meta, args.out, args.device, args.max_batch, uncond, args.freeze)
    print(f"exported {path} (+ {args.out}.json) for {args.device}, batch 1..{args.max_batch}")


if __name__ == "__main__":
    main()
