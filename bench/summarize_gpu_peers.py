#!/usr/bin/env python3
"""Markdown tables from bench/gpu_peers.sh's OUTDIR/*.jsonl: ms per network call of every variant
(scoreflow eager and from a CUDA graph, TorchScript and .pt2; the four Python loops), and the ratio
of the fastest Python variant to scoreflow's fastest path (> 1: scoreflow faster), all from one run.
"""
import collections
import glob
import json
import os
import sys

PY = ["python eager", "python cuda-graph", "python reduce-overhead", "python max-autotune-no-cudagraphs"]
SF = ["torchscript eager", "torchscript graph", "pt2 eager", "pt2 graph"]


def main():
    outdir = sys.argv[1]
    print("Machine: " + open(os.path.join(outdir, "machine.txt")).read().strip().replace("\n", "; ") + "\n")
    for path in sorted(glob.glob(os.path.join(outdir, "*.jsonl"))):
        cells = collections.defaultdict(dict)
        for line in open(path):
            r = json.loads(line)
            key = (r["sampler"], r["batch"])
            if r["variant"].startswith("scoreflow"):
                kind = r["variant"].split()[1]
                cells[key][kind + " eager"] = r["sampler_ms_per_call"]
                if r.get("sampler_graph_ms_per_call") is not None:
                    cells[key][kind + " graph"] = r["sampler_graph_ms_per_call"]
            else:
                cells[key][r["variant"]] = r["loop_ms_per_call"]
        print(f"### {os.path.basename(path)[:-6]}\n")
        print("| sampler | batch | " + " | ".join("scoreflow " + v for v in SF) + " | " + " | ".join(PY) +
              " | fastest Python ÷ fastest scoreflow |")
        print("|---|---:|" + "---:|" * (len(SF) + len(PY) + 1))
        for (sampler, batch), c in sorted(cells.items()):
            fmt = lambda v: f"{c[v]:.3f}" if v in c else "—"  # noqa: E731
            sf = [c[v] for v in SF if v in c]
            py = [c[v] for v in PY if v in c]
            ratio = f"{min(py) / min(sf):.2f}×" if sf and py else "—"
            print(f"| {sampler} | {batch} | " + " | ".join(fmt(v) for v in SF) + " | " + " | ".join(fmt(v) for v in PY) +
                  f" | {ratio} |")
        print()


if __name__ == "__main__":
    main()
