#!/usr/bin/env python3
"""Writes a TorchScript "network" that costs almost nothing (it returns zeros of the input's shape)
with the scoreflow metadata of another model file, so that `scoreflow bench` on it measures the
sampler's own per-call cost (everything that is not the network: preconditioning, the step
arithmetic, noise) in absolute terms. Divided by the real network's time per call at the same batch,
that is the sampler overhead without the network's run-to-run noise (issue #21; docs/performance.md).
  /usr/bin/python3 bench/make_null_model.py --like models/fashion_ddpm.pt --out null.pt"""
import argparse
import json
import zipfile

import torch


class Null(torch.nn.Module):
    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--like", required=True, help="model file whose scoreflow.json metadata is copied")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    with zipfile.ZipFile(args.like) as z:
        name = next(n for n in z.namelist() if n.endswith("extra/scoreflow.json"))
        meta = json.loads(z.read(name))
    # The null network has no second-moment head or feature method.
    for key in ("head", "features"):
        meta.pop(key, None)
    meta["description"] = "null network (zeros) with the metadata of " + args.like
    torch.jit.save(torch.jit.script(Null()), args.out, _extra_files={"scoreflow.json": json.dumps(meta)})


if __name__ == "__main__":
    main()
