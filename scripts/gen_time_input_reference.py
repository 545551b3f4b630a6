#!/usr/bin/python3
"""Reference network time inputs for scoreflow's time_input 'dpm_solver', computed by the official DPM-Solver
code (LuChengTHU/dpm-solver, dpm_solver_pytorch.py): NoiseScheduleVP('discrete', betas=...) and model_wrapper
with a noise-prediction model that records the t_input it is called with. For each sigma, t_continuous =
ns.inverse_lambda(-log sigma) (as DPM-Solver maps a sigma/lambda grid to its time), then the wrapped model is
called once. Schedules: linear (1e-4..0.02, N=1000), scaled_linear (0.00085..0.012, N=1000), linear with N=500
(t_input = 2 n), cosine (N=1000; the official code clips the steps with lambda < -5.1, so its N is smaller).
Everything in float64: torch's default dtype is set to float64 too, since the official constructor builds its
t_n = (n+1)/N keypoints with torch.linspace in the default dtype and only then casts them (in float32 they are
off by ~1e-7, which the extrapolation beyond sigma_max multiplies by up to ~400). The peer's code is imported from a checkout given on the command line, never copied:

  /usr/bin/python3 scripts/gen_time_input_reference.py /path/to/dpm-solver > tests/data/time_input_reference.json
"""
import json
import math
import sys

import torch


def betas(name, b0, b1, n):
    if name == "linear":
        return torch.linspace(b0, b1, n, dtype=torch.float64)
    if name == "scaled_linear":
        return torch.linspace(b0 ** 0.5, b1 ** 0.5, n, dtype=torch.float64) ** 2
    if name == "cosine":  # Nichol & Dhariwal (2021), s = 0.008, betas capped at 0.999
        f = lambda t: math.cos((t / n + 0.008) / 1.008 * math.pi / 2) ** 2
        return torch.tensor([min(1 - f(i + 1) / f(i), 0.999) for i in range(n)], dtype=torch.float64)
    raise ValueError(name)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.path.insert(0, sys.argv[1])
    torch.set_default_dtype(torch.float64)
    import dpm_solver_pytorch as dpm

    sigmas = [0.0015, 0.002, 0.01, 0.029, 0.1, 0.5, 1.0, 2.5, 7.3, 14.6, 30.0, 80.0, 156.0]
    cases = []
    for name, b0, b1, n in [("linear", 1e-4, 0.02, 1000), ("scaled_linear", 0.00085, 0.012, 1000),
                            ("linear", 1e-4, 0.02, 500), ("cosine", 0.0, 0.0, 1000)]:
        ns = dpm.NoiseScheduleVP("discrete", betas=betas(name, b0, b1, n), dtype=torch.float64)
        seen = []

        def model(x, t_input):
            seen.append(float(t_input.reshape(-1)[0]))
            return torch.zeros_like(x)

        fn = dpm.model_wrapper(model, ns, model_type="noise")
        for s in sigmas:
            t = ns.inverse_lambda(torch.tensor([-math.log(s)], dtype=torch.float64))
            fn(torch.zeros(1, 1, dtype=torch.float64), t)
        cases.append({"betas": name, "beta_start": b0, "beta_end": b1, "num_train_steps": n,
                      "official_total_N": ns.total_N, "sigmas": sigmas, "t_input": seen})
    json.dump({"generator": "scripts/gen_time_input_reference.py", "peer": "LuChengTHU/dpm-solver dpm_solver_pytorch.py",
               "cases": cases}, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
