#!/usr/bin/env python3
"""Where a plain TorchScript network's CPU time goes (docs/performance.md, "CPU", session 17): for each
model and batch, the median ms per call and the share of the autograd profiler's operator self time
spent in convolutions (which bounds what any change outside them can gain) and in the largest
operators. With --products, also torch.bmm against the same product as a 1x1 convolution (how
scoreflow's optimised module runs batched products where LibTorch has no MKL).

  /usr/bin/python3 bench/cpu_profile.py --threads 2 --batches 1,2,4,8 models/fashion_ddpm.pt /tmp/edm_unet.pt
"""
import argparse
import json
import time
import zipfile

import torch


def median_ms(fn, calls):
    ts = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2] * 1e3


def shares(path, batch):
    with zipfile.ZipFile(path) as z:
        meta = json.loads(z.read(next(n for n in z.namelist() if n.endswith("extra/scoreflow.json"))))
    m = torch.jit.load(path).eval()
    x, t = torch.randn(batch, *meta["shape"]), torch.full((batch,), 0.5)
    with torch.no_grad():
        for _ in range(4):  # the profiling executor specialises during the first calls
            m(x, t)
        ms = median_ms(lambda: m(x, t), 9)
        with torch.autograd.profiler.profile() as prof:
            for _ in range(5):
                m(x, t)
    rows = prof.key_averages()
    total = sum(r.self_cpu_time_total for r in rows)
    conv = sum(r.self_cpu_time_total for r in rows if "conv" in r.key or "mkldnn" in r.key)
    top = sorted(rows, key=lambda r: -r.self_cpu_time_total)[:6]
    print(f"{path.split('/')[-1]} batch {batch}: median {ms:.2f} ms; convolutions {100 * conv / total:.1f}% "
          f"of operator time (everything else free: at most {total / max(conv, 1e-9):.2f}x faster); top: "
          + ", ".join(f"{r.key} {100 * r.self_cpu_time_total / total:.1f}%" for r in top), flush=True)


def products():
    for n, k, m in ((256, 128, 256), (256, 256, 128), (64, 256, 64)):
        a, b = torch.randn(1, n, k), torch.randn(1, k, m)
        as_conv = lambda: torch.ops.aten.mkldnn_convolution(  # noqa: E731
            b[0].reshape(1, k, m, 1), a[0].reshape(n, k, 1, 1), None, [0, 0], [1, 1], [1, 1], 1)
        for f in (lambda: torch.bmm(a, b), as_conv):
            f()
        err = ((as_conv().reshape(n, m) - torch.bmm(a, b)[0]).norm() / torch.bmm(a, b).norm()).item()
        gflop = 2 * n * k * m / 1e9
        t_bmm, t_conv = median_ms(lambda: torch.bmm(a, b), 7), median_ms(as_conv, 7)
        print(f"product {n}x{k} by {k}x{m}: torch.bmm {t_bmm:.3f} ms ({gflop / t_bmm * 1e3:.1f} GFLOP/s), "
              f"1x1 convolution {t_conv:.3f} ms ({gflop / t_conv * 1e3:.1f} GFLOP/s), relative difference {err:.1e}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", help="TorchScript files with scoreflow metadata")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (default: PyTorch's own)")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--products", action="store_true")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, MKL {torch.backends.mkl.is_available()}")
    if a.products:
        products()
    for path in a.models:
        for b in (int(s) for s in a.batches.split(",")):
            shares(path, b)


if __name__ == "__main__":
    main()
