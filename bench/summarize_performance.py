#!/usr/bin/env python3
"""Turns bench/gpu_performance.sh's JSON lines into the markdown tables of docs/performance.md."""
import json
import os
import sys


def load(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip().startswith("{")]


def fmt(v, digits=3):
    return "—" if v is None else f"{v:.{digits}f}"


def pct(v):
    return "—" if v is None else f"{100 * v:+.2f}%"


def main():
    d = sys.argv[1]
    out = []
    gpu = open(os.path.join(d, "gpu.txt")).read().strip() if os.path.exists(os.path.join(d, "gpu.txt")) else "?"
    out.append(f"GPU: {gpu}\n")
    b64 = load(os.path.join(d, "cpp_b64.jsonl"))
    if b64:
        out.append("### Sampler overhead at batch 64 (10 NFE; ms per network call, median of repeats)\n")
        out.append("| sampler | NFE | network alone | sampler | overhead | network from graph | sampler from graph | overhead vs graph |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in b64:
            out.append(f"| {r['sampler']} | {r['nfe']} | {fmt(r['network_ms'])} | {fmt(r['sampler_ms_per_call'])} | "
                       f"{pct(r['sampler_overhead'])} | {fmt(r['network_graph_ms'])} | {fmt(r['sampler_graph_ms_per_call'])} | "
                       f"{pct(r['sampler_graph_overhead'])} |")
        out.append("")
    cpp = load(os.path.join(d, "cpp_small.jsonl"))
    py = {(r["sampler"], r["batch"]): r for r in load(os.path.join(d, "python_small.jsonl"))}
    if cpp:
        out.append("### C++ vs a Python eager loop (same TorchScript file, same grid; ms per network call)\n")
        out.append("| sampler | batch | Python network alone | Python loop | C++ eager loop | C++ graph loop | graph replay alone | "
                   "Python loop / C++ graph loop | C++ graph loop / graph replay |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in cpp:
            p = py.get((r["sampler"], r["batch"]))
            g = r["sampler_graph_ms_per_call"]
            ratio = (p["loop_ms_per_call"] / g) if (p and g) else None
            rel = (g / r["network_graph_ms"]) if (g and r["network_graph_ms"]) else None
            out.append(f"| {r['sampler']} | {r['batch']} | {fmt(p['network_ms']) if p else '—'} | "
                       f"{fmt(p['loop_ms_per_call']) if p else '—'} | {fmt(r['sampler_ms_per_call'])} | {fmt(g)} | "
                       f"{fmt(r['network_graph_ms'])} | {fmt(ratio, 2) + '×' if ratio else '—'} | {fmt(rel, 3) if rel else '—'} |")
        out.append("")
    dt = load(os.path.join(d, "cpp_dtype.jsonl"))
    if dt:
        out.append("### Reduced precision (dpmpp_2m, 10 NFE; CUDA autocast, state float32)\n")
        out.append("| dtype | batch | network alone | sampler | network from graph | sampler from graph | RMS vs fp32 (÷ sample std) |")
        out.append("|---|---:|---:|---:|---:|---:|---:|")
        for r in dt:
            out.append(f"| {r['dtype']} | {r['batch']} | {fmt(r['network_ms'])} | {fmt(r['sampler_ms_per_call'])} | "
                       f"{fmt(r['network_graph_ms'])} | {fmt(r['sampler_graph_ms_per_call'])} | "
                       f"{'—' if r['rms_vs_fp32'] is None else format(r['rms_vs_fp32'], '.2e')} |")
        out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
