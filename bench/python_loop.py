#!/usr/bin/env python3
"""The Python side of the speed comparison (issue #7): the same TorchScript network file, the
same sigma grid and the same sampler arithmetic as `scoreflow bench`, written as a plain PyTorch
eager loop — what a k-diffusion-style Python sampler does. Prints one JSON line per
(sampler, batch) with milliseconds per network call for the network alone and for the loop.

  python3 bench/python_loop.py --model models/fashion_ddpm.pt --device cuda \
      --samplers euler,heun,dpmpp_2m --batches 1,2,4,8,64 --nfe 10

`--optimize` runs the loop on `torch.jit.optimize_for_inference(torch.jit.freeze(module))` instead —
what a careful Python user does on the CPU (issue #21; bench/cpu_performance.sh runs both), and
`--fuse` runs it on `torch.jit.freeze(module)` with `torch.jit.enable_onednn_fusion(True)` (oneDNN
Graph fusion, PyTorch builds that have it).
GPU peers (issue #19, bench/gpu_peers.sh; PyTorch 2.x): `--eager FILE.py:FUNC` runs the eager
module FUNC(model_path) returns (the same weights as the file) instead of the TorchScript module, and
`--mode` picks how the network is called: eager, cuda-graph (the network captured per batch shape
with torch.cuda.graphs and replayed), compile (torch.compile's default mode, one graph per batch size,
with Inductor's freezing on the CPU), reduce-overhead or max-autotune-no-cudagraphs. `--pt2 FILE` runs
an AOTInductor package of the network (scripts/export_pt2.py) through torch._inductor.aoti_load_package:
the same file scoreflow runs (issue #21's CPU packages).

Supported metadata: prediction eps|x0|v, schedule vp_discrete (linear|scaled_linear betas) or edm,
time_input index|sigma|continuous|scaled|edm_c_noise. (Enough for the shipped demo model and the
export scripts' models; the C++ side supports more.)
"""
import argparse
import json
import math
import statistics
import sys
import time

import numpy as np
import torch


class Schedule:
    def __init__(self, meta):
        s = meta["schedule"]
        self.kind = s["type"]
        if self.kind == "vp_discrete":
            n = int(s.get("num_train_steps", 1000))
            b0, b1 = float(s.get("beta_start", 1e-4)), float(s.get("beta_end", 0.02))
            betas = s.get("betas", "linear")
            if betas == "linear":
                beta = np.linspace(b0, b1, n, dtype=np.float64)
            elif betas == "scaled_linear":
                beta = np.linspace(math.sqrt(b0), math.sqrt(b1), n, dtype=np.float64) ** 2
            else:
                sys.exit(f"error: python_loop.py supports linear/scaled_linear betas, not {betas}")
            abar = np.cumprod(1.0 - beta)
            self.sigmas = np.sqrt((1.0 - abar) / abar)
            self.log_sigmas = np.log(self.sigmas)
            self.sigma_min, self.sigma_max = float(self.sigmas[0]), float(self.sigmas[-1])
            self.n = n
        elif self.kind == "edm":
            self.sigma_min, self.sigma_max = float(s.get("sigma_min", 0.002)), float(s.get("sigma_max", 80))
        else:
            sys.exit(f"error: python_loop.py does not handle schedule type {self.kind}")

    def alpha(self, sigma):
        return 1.0 / math.sqrt(1.0 + sigma * sigma) if self.kind == "vp_discrete" else 1.0

    def t_of_sigma(self, sigma):  # log-sigma interpolation between the discrete steps
        ls = math.log(min(max(sigma, self.sigma_min), self.sigma_max))
        hi = int(np.searchsorted(self.log_sigmas, ls, side="right"))
        if hi <= 0:
            return 0.0
        if hi >= self.n:
            return float(self.n - 1)
        lo = hi - 1
        return lo + (ls - self.log_sigmas[lo]) / (self.log_sigmas[hi] - self.log_sigmas[lo])


def network_time(sch, time_input, sigma):
    if time_input == "index":
        return sch.t_of_sigma(sigma)
    if time_input in ("continuous", "scaled"):
        t = (sch.t_of_sigma(sigma) + 1) / sch.n if sch.kind == "vp_discrete" else sigma
        return 1000 * t if time_input == "scaled" else t
    if time_input == "sigma":
        return sigma
    if time_input == "edm_c_noise":
        return 0.25 * math.log(sigma)
    sys.exit(f"error: unknown time_input {time_input}")


def karras(n, smin, smax, rho=7.0):
    a, b = smax ** (1 / rho), smin ** (1 / rho)
    return [(a + (i / (n - 1) if n > 1 else 0.0) * (b - a)) ** rho for i in range(n)] + [0.0]


class Denoiser:
    def __init__(self, module, meta, device):
        self.module, self.meta = module, meta
        self.sch = Schedule(meta)
        self.prediction = meta.get("prediction", "x0")
        self.time_input = meta.get("time_input", "sigma")
        self.channels = meta["shape"][0]
        self.device = device
        self.calls = 0

    def __call__(self, x, sigma):
        self.calls += 1
        a = self.sch.alpha(sigma)
        t = torch.full((x.shape[0],), network_time(self.sch, self.time_input, sigma), device=self.device)
        out = self.module(x * a, t)[:, : self.channels]
        if self.prediction == "eps":
            return x - sigma * out
        if self.prediction == "x0":
            return out
        if self.prediction == "v":
            return a * a * x - a * sigma * out
        sys.exit(f"error: python_loop.py does not handle prediction {self.prediction}")


def euler(d, x, sigmas):
    for i in range(len(sigmas) - 1):
        den = d(x, sigmas[i])
        x = x + (x - den) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
    return x


def heun(d, x, sigmas):
    for i in range(len(sigmas) - 1):
        s, s1 = sigmas[i], sigmas[i + 1]
        den = d(x, s)
        dx = (x - den) / s
        x2 = x + dx * (s1 - s)
        if s1 == 0:
            x = x2
        else:
            dx2 = (x2 - d(x2, s1)) / s1
            x = x + (dx + dx2) / 2 * (s1 - s)
    return x


def dpmpp_2m(d, x, sigmas):
    old = None
    h_last = None
    for i in range(len(sigmas) - 1):
        s, s1 = sigmas[i], sigmas[i + 1]
        den = d(x, s)
        if s1 == 0:
            x = den
            break
        h = math.log(s / s1)
        if old is None or sigmas[i + 2] == 0:  # first step, and lower_order_final
            x = (s1 / s) * x - math.expm1(-h) * den
        else:
            r = h_last / h
            dd = (1 + 1 / (2 * r)) * den - (1 / (2 * r)) * old
            x = (s1 / s) * x - math.expm1(-h) * dd
        old, h_last = den, h
    return x


SAMPLERS = {"euler": (euler, lambda n: n), "heun": (heun, lambda n: (n + 1) // 2), "dpmpp_2m": (dpmpp_2m, lambda n: n)}


class GraphedNetwork:
    """network(x, t) captured once per input shape into a CUDA graph (after warm-up on a side stream)
    and replayed from static buffers; the output is the static buffer, used before the next call."""

    def __init__(self, net):
        self.net, self.graphs = net, {}

    def __call__(self, x, t):
        key = (tuple(x.shape), tuple(t.shape))
        if key not in self.graphs:
            sx, st = x.clone(), t.clone()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    self.net(sx, st)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = self.net(sx, st)
            self.graphs[key] = (graph, sx, st, out)
        graph, sx, st, out = self.graphs[key]
        sx.copy_(x)
        st.copy_(t)
        graph.replay()
        return out


def load_eager(spec, model_path):
    """'path/to/file.py:function' -> function(model_path), an eager nn.Module."""
    import importlib.util
    import os
    file, func = spec.rsplit(":", 1)
    sys.path.insert(0, os.path.dirname(os.path.abspath(file)))
    module_spec = importlib.util.spec_from_file_location(os.path.basename(file)[:-3], file)
    mod = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(mod)
    made = getattr(mod, func)(model_path)
    return made[0] if isinstance(made, tuple) else made  # e.g. export_pt2.demo_eager: (module, metadata)


def network_for_mode(net, mode, device):
    if mode == "eager":
        return net
    if mode == "cuda-graph":
        if device.type != "cuda":
            sys.exit("error: --mode cuda-graph needs --device cuda")
        return GraphedNetwork(net)
    if mode in ("compile", "reduce-overhead", "max-autotune-no-cudagraphs"):
        if not hasattr(torch, "compile"):
            sys.exit(f"error: --mode {mode} needs torch.compile (PyTorch >= 2.0); this is torch {torch.__version__}")
        torch._dynamo.config.cache_size_limit = 64  # one graph per batch size
        if mode == "compile" and device.type == "cpu":  # the default mode with freezing, as Intel's CPU guide advises
            torch._inductor.config.freezing = True
        return torch.compile(net, mode=None if mode == "compile" else mode, dynamic=False)
    sys.exit(f"error: unknown --mode {mode}; valid: eager, cuda-graph, compile, reduce-overhead, "
             "max-autotune-no-cudagraphs")


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(device, repeat, fn):
    fn()
    sync(device)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--samplers", default="euler,heun,dpmpp_2m")
    p.add_argument("--batches", default="1,2,4,8,64")
    p.add_argument("--nfe", type=int, default=10)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--save", help="write the samples of the first sampler at the first batch to this .npy (checks)")
    p.add_argument("--optimize", action="store_true", help="freeze + optimize_for_inference the module first")
    p.add_argument("--fuse", action="store_true", help="freeze the module and run it with oneDNN Graph fusion")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (default: PyTorch's own)")
    p.add_argument("--eager", metavar="FILE.py:FUNC", help="run FUNC(--model), an eager module, instead of the file")
    p.add_argument("--pt2", metavar="FILE", help="run this AOTInductor package of the same network (--model gives "
                   "the metadata) through torch._inductor.aoti_load_package")
    p.add_argument("--mode", default="eager",
                   help="eager | cuda-graph | compile | reduce-overhead | max-autotune-no-cudagraphs (torch.compile; "
                   "compile is the default mode, with Inductor's freezing on the CPU)")
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    extra = {"scoreflow.json": ""}
    module = torch.jit.load(args.model, map_location=device, _extra_files=extra).eval()
    impl = "python"
    if args.optimize:
        t0 = time.perf_counter()
        module = torch.jit.optimize_for_inference(torch.jit.freeze(module))
        print(json.dumps({"impl": "python-optimized", "optimize_seconds": time.perf_counter() - t0}), flush=True)
        impl = "python-optimized"
    if args.fuse:
        torch.jit.enable_onednn_fusion(True)
        module = torch.jit.freeze(module)
        impl = "python-fused"
    if args.eager:
        module = load_eager(args.eager, args.model).to(device).eval()
        impl = "python-eager-module"
    if args.pt2:
        module = torch._inductor.aoti_load_package(args.pt2)
        impl = "python-pt2"
    if args.mode != "eager":
        module = network_for_mode(module, args.mode, device)
        impl += "-" + args.mode
    meta = json.loads(extra["scoreflow.json"])
    d = Denoiser(module, meta, device)
    shape = meta["shape"]
    torch.backends.cudnn.benchmark = False
    with torch.inference_mode():
        for name in args.samplers.split(","):
            if name not in SAMPLERS:
                sys.exit(f"error: python_loop.py has samplers {', '.join(SAMPLERS)}, not {name}")
            fn, steps_for = SAMPLERS[name]
            steps = steps_for(args.nfe)
            sigmas = karras(steps, d.sch.sigma_min, d.sch.sigma_max)
            for batch in [int(b) for b in args.batches.split(",")]:
                g = torch.Generator().manual_seed(0)
                x0 = (torch.randn([batch] + shape, generator=g) * sigmas[0]).to(device)
                xin = x0 * d.sch.alpha(sigmas[len(sigmas) // 2])
                t = torch.full((batch,), network_time(d.sch, d.time_input, sigmas[len(sigmas) // 2]), device=device)

                def net_only():
                    for _ in range(args.iterations):
                        module(xin, t)

                net = median_time(device, args.repeat, net_only) / args.iterations
                d.calls = 0
                fn(d, x0.clone(), sigmas)
                calls = d.calls
                loop = median_time(device, args.repeat, lambda: fn(d, x0.clone(), sigmas)) / calls
                if args.save:
                    np.save(args.save, fn(d, x0.clone(), sigmas).float().cpu().numpy())
                    args.save = None
                print(json.dumps({"impl": impl, "sampler": name, "batch": batch, "nfe": calls, "steps": steps,
                                  "network_ms": net * 1e3, "loop_ms_per_call": loop * 1e3,
                                  "torch": torch.__version__, "device": str(device),
                                  "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
