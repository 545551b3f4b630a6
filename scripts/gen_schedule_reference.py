#!/usr/bin/python3
"""Reference σ grids for `ays`, `kl_optimal`, `beta`, `polyexponential` and `vp`, computed by the peers'
own functions (read from their sources at run time, never copied into scoreflow):

  k-diffusion  k_diffusion/sampling.py        get_sigmas_polyexponential, get_sigmas_vp
  ComfyUI      comfy/samplers.py              kl_optimal_scheduler, beta_scheduler
               comfy_extras/nodes_align_your_steps.py   loglinear_interp (the AYS project page's)
  diffusers    src/diffusers/schedulers/scheduling_utils.py         AysSchedules (published AYS σ)
               src/diffusers/schedulers/scheduling_euler_discrete.py  EulerDiscreteScheduler._convert_to_beta

Precision: k-diffusion's torch functions run with torch's default dtype set to float64; ComfyUI's
functions ask for `torch.float` / `torch.FloatTensor` explicitly, so they run here with a `torch` whose
`float` and `FloatTensor` are float64 (same code, double arithmetic); numpy/scipy code (beta, loglinear_interp, _convert_to_beta) is
double already. Every grid is in double, so the C++ test compares at ~1e-12 relative.

AYS: diffusers publishes the 10-step lists ending in 0; the log-linear interpolation to other step
counts needs the list's last positive σ, which the AYS project page gives as 0.029 (SD 1.5, SDXL) and
0.002 (SVD) — appended here. steps != 10: loglinear_interp(11 values, steps + 1), last set to 0 (as
ComfyUI's AlignYourStepsScheduler does).

Usage: /usr/bin/python3 scripts/gen_schedule_reference.py --kdiffusion DIR --comfyui DIR --diffusers DIR
(checkouts of crowsonkb/k-diffusion, comfyanonymous/ComfyUI, huggingface/diffusers). Writes
tests/data/schedule_reference.json.
"""
import argparse
import ast
import json
import math
import os
import types

import numpy as np
import scipy.stats
import torch


def peer_functions(path, names, env):
    """Executes the top-level definitions `names` (functions or assignments) of a peer source file."""
    with open(path) as f:
        tree = ast.parse(f.read())
    wanted = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in names:
            wanted.append(node)
        elif isinstance(node, ast.Assign) and any(getattr(t, "id", None) in names for t in node.targets):
            wanted.append(node)
    found = {getattr(n, "name", None) or n.targets[0].id for n in wanted}
    missing = set(names) - found
    if missing:
        raise SystemExit(f"{path}: no top-level {sorted(missing)}")
    module = ast.Module(body=wanted, type_ignores=[])
    exec(compile(module, path, "exec"), env)
    return env


def method_source(path, cls, method, env):
    """Executes one method of a peer class as a plain function (called with a stand-in `self`)."""
    with open(path) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == method:
                    item.decorator_list = []
                    exec(compile(ast.Module(body=[item], type_ignores=[]), path, "exec"), env)
                    return env[method]
    raise SystemExit(f"{path}: no {cls}.{method}")


def discrete_sigmas(betas_name, b0, b1, n):
    if betas_name == "linear":
        betas = np.linspace(b0, b1, n, dtype=np.float64)
    else:  # scaled_linear
        betas = np.linspace(b0 ** 0.5, b1 ** 0.5, n, dtype=np.float64) ** 2
    ab = np.cumprod(1.0 - betas)
    return np.sqrt((1 - ab) / ab)


def as_list(x):
    return [float(v) for v in (x.tolist() if hasattr(x, "tolist") else x)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kdiffusion", required=True)
    ap.add_argument("--comfyui", required=True)
    ap.add_argument("--diffusers", required=True)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data",
                                                  "schedule_reference.json"))
    a = ap.parse_args()
    torch.set_default_dtype(torch.float64)

    kd = peer_functions(os.path.join(a.kdiffusion, "k_diffusion", "sampling.py"),
                        ["append_zero", "get_sigmas_polyexponential", "get_sigmas_vp"],
                        {"torch": torch, "math": math})
    torch64 = types.SimpleNamespace(**{k: getattr(torch, k) for k in dir(torch) if not k.startswith("__")})
    torch64.float = torch.float64
    torch64.FloatTensor = lambda data: torch.tensor(data, dtype=torch.float64)
    comfy = peer_functions(os.path.join(a.comfyui, "comfy", "samplers.py"), ["kl_optimal_scheduler", "beta_scheduler"],
                           {"torch": torch64, "math": math, "numpy": np, "scipy": scipy})
    ays_node = peer_functions(os.path.join(a.comfyui, "comfy_extras", "nodes_align_your_steps.py"),
                              ["loglinear_interp"], {"np": np})
    sched_dir = os.path.join(a.diffusers, "src", "diffusers", "schedulers")
    du = peer_functions(os.path.join(sched_dir, "scheduling_utils.py"), ["AysSchedules"], {})
    convert_to_beta = method_source(os.path.join(sched_dir, "scheduling_euler_discrete.py"), "EulerDiscreteScheduler",
                                    "_convert_to_beta", {"np": np, "torch": torch, "scipy": scipy})

    cases = []

    def add(grid, args, steps, schedule, sigmas, source):
        cases.append({"grid": grid, "args": args, "steps": steps, "schedule": schedule, "sigmas": as_list(sigmas),
                      "source": source})

    # k-diffusion
    for n, lo, hi, rho in [(10, 0.002, 80.0, 1.0), (7, 0.002, 80.0, 2.5), (5, 0.03, 14.6, 0.5), (1, 0.002, 80.0, 1.0)]:
        add("polyexponential", f"sigma_min={lo!r},sigma_max={hi!r},rho={rho!r}", n, "edm",
            kd["get_sigmas_polyexponential"](n, lo, hi, rho), "k-diffusion get_sigmas_polyexponential")
    for n, bd, bmin, eps in [(10, 19.9, 0.1, 1e-3), (6, 15.0, 0.2, 1e-2)]:
        add("vp", f"beta_d={bd!r},beta_min={bmin!r},eps_s={eps!r}", n, "edm", kd["get_sigmas_vp"](n, bd, bmin, eps),
            "k-diffusion get_sigmas_vp")

    # ComfyUI kl_optimal
    for n, lo, hi in [(10, 0.002, 80.0), (4, 0.0292, 14.61), (25, 0.002, 80.0)]:
        add("kl_optimal", f"sigma_min={lo!r},sigma_max={hi!r}", n, "edm", comfy["kl_optimal_scheduler"](n, lo, hi),
            "ComfyUI kl_optimal_scheduler")

    # AYS: published lists (diffusers) and the project page's log-linear interpolation (ComfyUI's copy)
    published = {"sd15": ("StableDiffusionSigmas", 0.029), "sdxl": ("StableDiffusionXLSigmas", 0.029),
                 "svd": ("StableDiffusionVideoSigmas", 0.002)}
    for model, (key, last) in published.items():
        ten = du["AysSchedules"][key]
        add("ays:" + model, "", 10, "edm", ten, "diffusers AysSchedules['" + key + "']")
        table = ten[:-1] + [last]
        for steps in [4, 7, 15, 32]:
            s = ays_node["loglinear_interp"](table, steps + 1)
            s[-1] = 0
            add("ays:" + model, "", steps, "edm", s, "ComfyUI/AYS loglinear_interp of AysSchedules['" + key + "']")

    # beta on discrete chains: ComfyUI's beta_scheduler over the chain's σ table (ascending, index = timestep)
    for chain, (name, b0, b1) in {"sd": ("scaled_linear", 0.00085, 0.012), "ddpm": ("linear", 1e-4, 0.02)}.items():
        table = discrete_sigmas(name, b0, b1, 1000)
        ms = types.SimpleNamespace(sigmas=table)
        for steps, al, be in [(10, 0.6, 0.6), (20, 0.6, 0.6), (7, 0.5, 0.7)]:
            add("beta", f"alpha={al!r},beta={be!r}", steps, chain, comfy["beta_scheduler"](ms, steps, al, be),
                "ComfyUI beta_scheduler")
    # beta on continuous schedules: diffusers' _convert_to_beta over the schedule's time range; EDM's time is σ
    for steps, al, be in [(10, 0.6, 0.6), (7, 0.5, 0.7), (1, 0.6, 0.6)]:
        this = types.SimpleNamespace(config=types.SimpleNamespace(sigma_min=0.002, sigma_max=80.0))
        s = convert_to_beta(this, torch.tensor([80.0, 0.002]), steps, al, be)
        add("beta", f"alpha={al!r},beta={be!r}", steps, "edm", np.append(np.asarray(s, dtype=np.float64), 0.0),
            "diffusers EulerDiscreteScheduler._convert_to_beta (sigma range 0.002..80)")
    # vp_linear(0.1, 20): times from _convert_to_beta over [1e-3, 1], σ(t) = sqrt(expm1(0.1 t + 19.9 t²/2))
    for steps, al, be in [(8, 0.6, 0.6)]:
        this = types.SimpleNamespace(config=types.SimpleNamespace(sigma_min=1e-3, sigma_max=1.0))
        t = np.asarray(convert_to_beta(this, torch.tensor([1.0, 1e-3]), steps, al, be), dtype=np.float64)
        s = np.sqrt(np.expm1(0.1 * t + 19.9 * t * t / 2))
        add("beta", f"alpha={al!r},beta={be!r}", steps, "vp_linear", np.append(s, 0.0),
            "diffusers EulerDiscreteScheduler._convert_to_beta times over [1e-3, 1], VP-linear sigma(t)")

    doc = {"generator": "scripts/gen_schedule_reference.py",
           "schedules": {"edm": "NoiseSchedule::edm(0.002, 80)", "sd": "vp_discrete scaled_linear 0.00085..0.012 N=1000",
                         "ddpm": "vp_discrete linear 1e-4..0.02 N=1000", "vp_linear": "vp_linear(0.1, 20)"},
           "cases": cases}
    with open(a.out, "w") as f:  # one case per line
        cases_text = ",\n  ".join(json.dumps(c) for c in cases)
        head = json.dumps({k: v for k, v in doc.items() if k != "cases"}, indent=1)[:-2]
        f.write(head + ',\n "cases": [\n  ' + cases_text + "\n ]\n}\n")
    print(f"wrote {len(cases)} cases to {a.out}")


if __name__ == "__main__":
    main()
