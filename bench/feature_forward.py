#!/usr/bin/env python3
"""Pure forward throughput of a TorchScript feature network (images/s), the yardstick for
`scoreflow eval fid`'s feature extraction (bench/feature_throughput.sh). The input is random,
already on the device, in the network's declared input_shape (its scoreflow.json), so that only
the network itself is timed."""
import argparse
import json
import time

import torch


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--features", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch", type=int, default=2000)
    p.add_argument("--num", type=int, default=10000, help="images timed (whole batches)")
    a = p.parse_args()
    extra = {"scoreflow.json": ""}
    net = torch.jit.load(a.features, map_location=a.device, _extra_files=extra).eval()
    meta = json.loads(extra["scoreflow.json"] or "{}")
    shape = meta.get("input_shape")
    if not shape:
        raise SystemExit("error: %s declares no input_shape in scoreflow.json" % a.features)
    x = torch.rand([a.batch] + list(shape), device=a.device) * 2 - 1
    reps = max(1, a.num // a.batch)
    sync = torch.cuda.synchronize if a.device.startswith("cuda") else (lambda: None)
    with torch.no_grad():
        for _ in range(3):
            net(x)
        sync()
        t0 = time.perf_counter()
        for _ in range(reps):
            net(x)
        sync()
        seconds = time.perf_counter() - t0
    print(json.dumps({"device": a.device, "batch": a.batch, "images": reps * a.batch,
                      "images_per_second": reps * a.batch / seconds}))


if __name__ == "__main__":
    main()
