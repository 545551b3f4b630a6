#!/usr/bin/env python3
"""Markdown tables from bench/cpu_performance.sh's OUTDIR/*.jsonl: ms per network call of every
variant, the ratios of the Python loops to scoreflow's default path (the optimised module up to the
batch limit the commands chose by timing at load, OUTDIR/TAG.choice.json, the plain one above), each
ratio taken within one round and
shown as its range over the rounds, and the sampler's overhead over the network alone.
"""
import collections
import glob
import json
import os
import sys

DEFAULT_MAX_BATCH = 8  # the fixed limit before the choice was timed at load (no TAG.choice.json)
VARIANTS = ["scoreflow plain", "scoreflow optimised", "python", "python optimised"]


def per_call(row):
    return row["sampler_ms_per_call"] if "sampler_ms_per_call" in row else row["loop_ms_per_call"]


def span(values, fmt):
    lo, hi = min(values), max(values)
    return fmt.format(lo) if abs(hi - lo) < 1e-12 else fmt.format(lo) + "–" + fmt.format(hi)


def main():
    outdir = sys.argv[1]
    print(f"Machine: {open(os.path.join(outdir, 'machine.txt')).read().strip()}\n")
    for path in sorted(glob.glob(os.path.join(outdir, "*.jsonl"))):
        tag = os.path.basename(path)[:-6]
        rows = [json.loads(line) for line in open(path) if line.strip()]
        t = collections.defaultdict(dict)  # (sampler, batch) -> {(round, variant): row}
        rounds = sorted({r["round"] for r in rows})
        for r in rows:
            t[(r["sampler"], r["batch"])][(r["round"], r["variant"])] = r
        max_batch, choice = DEFAULT_MAX_BATCH, os.path.join(outdir, tag + ".choice.json")
        if os.path.exists(choice):
            max_batch = json.load(open(choice))["cpu_path"]["max_batch"]
        print(f"### {tag}\n")
        print(f"scoreflow's default here: the optimised module for batches <= {max_batch}, the plain one above\n")
        print("ms per network call (mean over rounds " + ", ".join(map(str, rounds)) + "); ratios > 1: scoreflow's default faster\n")
        print("| sampler | batch | scoreflow plain | scoreflow optimised | Python loop | Python frozen+optimised | "
              "Python ÷ scoreflow default | Python optimised ÷ scoreflow default | optimised ÷ plain (scoreflow) |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for (sampler, batch), cell in sorted(t.items()):
            ms = {v: [per_call(cell[(rd, v)]) for rd in rounds if (rd, v) in cell] for v in VARIANTS}
            if any(not ms[v] for v in VARIANTS):
                continue
            default = "scoreflow optimised" if batch <= max_batch else "scoreflow plain"
            ratio = lambda v: [per_call(cell[(rd, v)]) / per_call(cell[(rd, default)]) for rd in rounds
                               if (rd, v) in cell and (rd, default) in cell]
            speed = [per_call(cell[(rd, "scoreflow plain")]) / per_call(cell[(rd, "scoreflow optimised")]) for rd in rounds
                     if (rd, "scoreflow plain") in cell and (rd, "scoreflow optimised") in cell]
            mean = lambda v: sum(ms[v]) / len(ms[v])
            print(f"| {sampler} | {batch} | " + " | ".join(f"{mean(v):.1f}" for v in VARIANTS) +
                  f" | {span(ratio('python'), '{:.2f}')}× | {span(ratio('python optimised'), '{:.2f}')}× | "
                  f"{span(speed, '{:.2f}')}× |")
        print()
        big = max(b for _, b in t)
        print(f"Sampler overhead over the network alone at batch {big} (scoreflow bench, per round):\n")
        print("| sampler | module | network alone (ms) | sampler (ms per call) | overhead |")
        print("|---|---|---:|---:|---:|")
        for (sampler, batch), cell in sorted(t.items()):
            if batch != big:
                continue
            for v in ("scoreflow plain", "scoreflow optimised"):
                rs = [cell[(rd, v)] for rd in rounds if (rd, v) in cell]
                if rs:
                    print(f"| {sampler} | {v.split()[1]} | " + " / ".join(f"{r['network_ms']:.1f}" for r in rs) + " | " +
                          " / ".join(f"{r['sampler_ms_per_call']:.1f}" for r in rs) + " | " +
                          " / ".join(f"{100 * r['sampler_overhead']:+.1f}%" for r in rs) + " |")
        print()


if __name__ == "__main__":
    main()
