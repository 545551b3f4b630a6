#!/usr/bin/env python3
"""Markdown tables from bench/cpu_performance.sh's OUTDIR/*.jsonl: ms per network call of every
variant, the ratios of the Python loops to scoreflow's default path (the "scoreflow default" rows
where the run has them: the commands without flags; else the accelerated module and batch limit
the commands chose by timing at load, OUTDIR/TAG.choice.json, the plain one above), each ratio taken
within one round and shown as its range over the rounds (from three rounds on, their median first),
and the sampler's overhead over the network alone.
"""
import collections
import glob
import json
import os
import statistics
import sys

DEFAULT_MAX_BATCH = 8  # the fixed limit before the choice was timed at load (no TAG.choice.json)
VARIANTS = ["scoreflow plain", "scoreflow optimised", "scoreflow default", "scoreflow teams", "scoreflow fused",
            "scoreflow pt2", "python", "python optimised", "python fused", "python pt2", "python compiled"]
FAST = ["scoreflow optimised", "scoreflow default", "scoreflow teams", "scoreflow fused", "scoreflow pt2"]


def per_call(row):
    return row["sampler_ms_per_call"] if "sampler_ms_per_call" in row else row["loop_ms_per_call"]


def span(values, fmt):
    lo, hi = min(values), max(values)
    return fmt.format(lo) if abs(hi - lo) < 1e-12 else fmt.format(lo) + "–" + fmt.format(hi)


def ratios(cell, rounds, v, base):
    """v's time over base's in each round that has both."""
    return [per_call(cell[(rd, v)]) / per_call(cell[(rd, base)]) for rd in rounds if (rd, v) in cell and (rd, base) in cell]


def fmt_ratio(values):
    """The range over the rounds; from three rounds on, their median first."""
    if not values:
        return "–"
    if len(values) < 3:
        return f"{span(values, '{:.2f}')}×"
    return f"{statistics.median(values):.2f}× ({span(values, '{:.2f}')})"


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
        max_batch, module, choice = DEFAULT_MAX_BATCH, "optimized", os.path.join(outdir, tag + ".choice.json")
        if os.path.exists(choice):
            cpu = json.load(open(choice))["cpu_path"]
            max_batch, module = cpu["max_batch"], cpu.get("module") or "optimized"
        fast = "scoreflow fused" if module == "fused" else "scoreflow optimised"
        variants = [v for v in VARIANTS if any(r["variant"] == v for r in rows)]
        pythons = [v for v in variants if v.startswith("python")]
        print(f"### {tag}\n")
        if any(r["variant"] == "scoreflow default" for r in rows):
            print("scoreflow's default here: the commands without flags (scoreflow default)\n")
        elif max_batch > 0:
            print(f"scoreflow's default here: the {fast.split()[1]} module for batches <= {max_batch}, the plain one above\n")
        else:
            print("scoreflow's default here: the plain module at every batch (the accelerated one lost the timing at load)\n")
        print("ms per network call (mean over rounds " + ", ".join(map(str, rounds)) + "); ratios > 1: scoreflow's default faster\n")
        print("| sampler | batch | " + " | ".join(variants) + " | " +
              " | ".join(f"{v} ÷ scoreflow default" for v in pythons) + " | " +
              " | ".join(f"{v.split()[1]} ÷ plain (scoreflow)" for v in variants if v in FAST) + " |")
        print("|---|---:|" + "---:|" * (len(variants) + len(pythons) + len([v for v in variants if v in FAST])))
        for (sampler, batch), cell in sorted(t.items()):
            ms = {v: [per_call(cell[(rd, v)]) for rd in rounds if (rd, v) in cell] for v in variants}
            if not ms.get("scoreflow plain"):
                continue
            default = fast if batch <= max_batch else "scoreflow plain"
            if ms.get("scoreflow default"):
                default = "scoreflow default"
            ratio = lambda v, base: ratios(cell, rounds, v, base)
            mean = lambda v: sum(ms[v]) / len(ms[v]) if ms[v] else float("nan")
            print(f"| {sampler} | {batch} | " + " | ".join(f"{mean(v):.1f}" for v in variants) + " | " +
                  " | ".join(fmt_ratio(ratio(v, default)) for v in pythons) + " | " +
                  " | ".join(fmt_ratio(ratio('scoreflow plain', v)) for v in variants if v in FAST) + " |")
        print()
        if "scoreflow pt2" in variants:
            print("The CPU package (scoreflow pt2) against the Python loops, ratios > 1: the package in scoreflow faster\n")
            print("| sampler | batch | scoreflow pt2 | " + " | ".join(f"{v} ÷ scoreflow pt2" for v in pythons) + " |")
            print("|---|---:|---:|" + "---:|" * len(pythons))
            for (sampler, batch), cell in sorted(t.items()):
                rs = [per_call(cell[(rd, "scoreflow pt2")]) for rd in rounds if (rd, "scoreflow pt2") in cell]
                if not rs:
                    continue
                cols = [fmt_ratio(ratios(cell, rounds, v, "scoreflow pt2")) for v in pythons]
                print(f"| {sampler} | {batch} | {sum(rs) / len(rs):.1f} | " + " | ".join(cols) + " |")
            print()
        big = max(b for _, b in t)
        print(f"Sampler overhead over the network alone at batch {big} (scoreflow bench, per round):\n")
        print("| sampler | module | network alone (ms) | sampler (ms per call) | overhead |")
        print("|---|---|---:|---:|---:|")
        for (sampler, batch), cell in sorted(t.items()):
            if batch != big:
                continue
            for v in ["scoreflow plain"] + FAST:
                rs = [cell[(rd, v)] for rd in rounds if (rd, v) in cell]
                if rs:
                    print(f"| {sampler} | {v.split()[1]} | " + " / ".join(f"{r['network_ms']:.1f}" for r in rs) + " | " +
                          " / ".join(f"{r['sampler_ms_per_call']:.1f}" for r in rs) + " | " +
                          " / ".join(f"{100 * r['sampler_overhead']:+.1f}%" for r in rs) + " |")
        print()


if __name__ == "__main__":
    main()
