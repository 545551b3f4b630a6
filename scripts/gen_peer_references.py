#!/usr/bin/python3
"""Parity references: runs the peers' own sampler code on small fixture networks and writes what it
returns, for tests/peer_parity_test.cpp to compare with scoreflow's library on the same network,
initial state and σ grid.

    /usr/bin/python3 scripts/gen_peer_references.py \
        --diff-sampler DIFF_SAMPLER --k-diffusion K_DIFFUSION \
        --dpm-solver DPM_SOLVER --unipc UNIPC --analytic-dpm ANALYTIC_DPM --out tests/data/peer_refs/

Each path is a checkout (or `git archive` of a snapshot) of zju-pi/diff-sampler (diff-solvers-main and
amed-solver-main), crowsonkb/k-diffusion, LuChengTHU/dpm-solver, wl-zhao/UniPC and baofff/Analytic-DPM
(celeba_lsun_codes/core/inference); the peers' modules are imported from there and never copied.
Analytic-DPM's cases give both codes the same Γ table (refs.npz `adpm.gamma`) and the same noise
stream; AMED's give both the same predictor outputs (a per-step table of r, scale_dir, scale_time,
in cases.json). Only the fixture networks of a fresh run differ in bytes (zip timestamps), not in
weights: keep the committed .pt files.
Debian's torch 1.13 is enough: k-diffusion's optional imports (torchsde, torchdiffeq, tqdm, PIL, …)
are stubbed, since its samplers here need none of them.

Writes into --out: the four fixture networks (TorchScript with their scoreflow.json, a few KB each:
EDM x0-prediction, VP-discrete ε, VP-linear continuous-time ε, VP-discrete v), refs.npz (per case
`<id>.x` the initial state in σ-space, x = x_t/α, and `<id>.out` what the peer returned, also in
σ-space) and cases.json (per case: peer, its call with every setting, fixture, σ grid as float64, the
scoreflow sampler and --sampler-args, the noise seeds of stochastic cases, and a note where the peer
computes something scoreflow deliberately does not, with the tolerance the test then uses).

Peers run with their state in float64 and the network in float32 (its inputs cast), so the references
carry the peers' algorithms without float32 step round-off; the library runs in float32 as a user
would, and the test allows 1e-5 relative L2.
"""
import argparse
import contextlib
import importlib.util
import io
import json
import math
import os
import sys
import types

import numpy as np
import torch

SHAPE = (2, 4, 4)
BATCH = 2
SEEDS = [11, 12]  # the NoiseSource seeds of the stochastic cases (one per row)

# ---------------------------------------------------------------------------------------------
# Fixture networks: two 3x3 convolutions with a smooth time embedding; fixed seeded weights.


class Net(torch.nn.Module):
    """F(x, t). kind: 'edm_x0' (t = σ; returns out_scale·tanh(·): with out_scale 1 diff-sampler's
    always-on dynamic thresholding of x0 is the identity, with 8 it is not), 'eps' or 'v' (t = the
    network's time input)."""

    def __init__(self, kind: str, t_scale: float, out_scale: float = 1.0):
        super().__init__()
        self.kind = kind
        self.t_scale = t_scale
        self.out_scale = out_scale
        self.conv = torch.nn.Conv2d(2, 8, 3, padding=1)
        self.emb = torch.nn.Linear(6, 8)
        self.out = torch.nn.Conv2d(8, 2, 3, padding=1)

    def forward(self, x, t):
        tf = t.float()
        if self.kind == "edm_x0":
            x = x / torch.sqrt(tf * tf + 0.25)[:, None, None, None]
            tf = torch.log(tf) / 4.0
        else:
            tf = tf / self.t_scale
        feats = torch.stack([torch.sin(tf), torch.cos(tf), torch.sin(2 * tf), torch.cos(2 * tf),
                             torch.sin(3 * tf), torch.cos(3 * tf)], dim=1)
        h = torch.nn.functional.silu(self.conv(x) + self.emb(feats)[:, :, None, None])
        y = self.out(h)
        if self.kind == "edm_x0":
            y = self.out_scale * torch.tanh(y)
        return y


DISCRETE = {"type": "vp_discrete", "betas": "linear", "beta_start": 1e-4, "beta_end": 0.02, "num_train_steps": 1000}
EDM_META = {"prediction": "x0", "schedule": {"type": "edm", "sigma_min": 0.002, "sigma_max": 80}, "time_input": "sigma"}
FIXTURES = {
    "edm_x0": ("edm_x0", 1.0, {"prediction": "x0", "schedule": {"type": "edm", "sigma_min": 0.002, "sigma_max": 80},
                               "time_input": "sigma"}),
    "vp_discrete_eps": ("eps", 1000.0, {"prediction": "eps", "schedule": DISCRETE, "time_input": "index"}),
    "vp_linear_eps": ("eps", 1.0, {"prediction": "eps", "schedule": {"type": "vp_linear", "beta_min": 0.1,
                                                                       "beta_max": 20.0, "t_eps": 1e-3},
                                   "time_input": "continuous"}),
    "vp_discrete_v": ("v", 1000.0, {"prediction": "v", "schedule": DISCRETE, "time_input": "index"}),
    "edm_x0_wide": ("edm_x0", 1.0, EDM_META, 8.0),  # x0 in (-8, 8): thresholding acts
}


def make_fixtures(out):
    nets = {}
    for k, (name, (kind, t_scale, meta, *out_scale)) in enumerate(FIXTURES.items()):
        torch.manual_seed(100 + k)
        net = Net(kind, t_scale, *out_scale).eval()
        meta = dict(meta, shape=list(SHAPE), data_range=[-1, 1])
        path = os.path.join(out, name + ".pt")
        torch.jit.save(torch.jit.script(net), path, _extra_files={"scoreflow.json": json.dumps(meta)})
        nets[name] = torch.jit.load(path).eval()  # the peers run the saved network itself
    return nets


BETAS = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
ALPHAS_CUMPROD = torch.cumprod(1 - BETAS, 0)
DISCRETE_SIGMAS = ((1 - ALPHAS_CUMPROD) / ALPHAS_CUMPROD).sqrt()


def call(net, x, t):
    """The network in float32 on a float64 state (output back in the state's dtype)."""
    t = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
    if t.numel() == 1:
        t = t.expand(x.shape[0])
    with torch.no_grad():
        return net(x.float(), t.float()).to(x.dtype)


# ---------------------------------------------------------------------------------------------
# Grids (float64 σ, descending; written into cases.json exactly as the peers got them).


def karras(n_steps, lo=0.002, hi=80.0, rho=7.0):
    i = np.arange(n_steps + 1) / n_steps
    return list((hi ** (1 / rho) + i * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho)


def vp_linear_sigma(t, b0=0.1, b1=20.0):
    return math.sqrt(math.expm1(0.5 * (b1 - b0) * t * t + b0 * t))


TIME_UNIFORM_T = list(np.linspace(1.0, 1e-3, 7))  # 6 steps, t from 1 to 1e-3
DISCRETE_STEPS = [999, 799, 599, 399, 199, 99, 9]  # integer timesteps: every convention agrees there

GRIDS = {
    "karras5": karras(5),
    "karras5_zero": karras(5) + [0.0],
    "karras12": karras(12),
    "karras6_vp": karras(6, lo=float(DISCRETE_SIGMAS[0]), hi=float(DISCRETE_SIGMAS[-1])),
    "karras6_vp_zero": karras(6, lo=float(DISCRETE_SIGMAS[0]), hi=float(DISCRETE_SIGMAS[-1])) + [0.0],
    "time_uniform6_vplinear": [vp_linear_sigma(t) for t in TIME_UNIFORM_T],
    "discrete6": [float(DISCRETE_SIGMAS[n]) for n in DISCRETE_STEPS],
}


def initial_state(fixture, grid_name, grid):
    """x at σ_0 in σ-space: σ_0 · a fixed standard normal, seeded by fixture and grid, so that
    peers given the same network and grid start from the same state and can be compared."""
    g = torch.Generator().manual_seed(sum(map(ord, fixture + "/" + grid_name.replace("_zero", ""))) * 7919)
    return torch.randn((BATCH,) + SHAPE, generator=g, dtype=torch.float64) * grid[0]


def alpha_of_sigma(sigma):
    return 1.0 / math.sqrt(1.0 + sigma * sigma)


def seeded_noise_sampler(shape, skip=0):
    """scoreflow's NoiseSource: row b draws from a CPU generator seeded with SEEDS[b], float32.
    skip: draws of `shape` discarded first (scoreflow's run_sampler, and so `scoreflow sample`,
    draws the initial noise from the same generators before the sampler's first draw)."""
    gens = [torch.Generator().manual_seed(s) for s in SEEDS]
    for _ in range(skip):
        for g in gens:
            torch.randn(shape, generator=g, dtype=torch.float32)

    def sample(sigma, sigma_next):
        return torch.stack([torch.randn(shape, generator=g, dtype=torch.float32) for g in gens]).double()

    return sample


# ---------------------------------------------------------------------------------------------
# Importing the peers' code from their checkouts.


def load_module(name, path, extra_path=None):
    if extra_path and extra_path not in sys.path:
        sys.path.insert(0, extra_path)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def import_k_diffusion(root):
    """k_diffusion.sampling and .external without the package __init__ (training/eval imports)."""
    stub = types.ModuleType
    for name in ("torchsde", "torchdiffeq"):
        sys.modules.setdefault(name, stub(name))
    sys.modules["torchdiffeq"].odeint = None
    tq = stub("tqdm")
    tqa = stub("tqdm.auto")
    tqa.trange = lambda n, disable=None: range(n)
    tqa.tqdm = lambda it=None, *a, **k: it
    tq.auto = tqa
    sys.modules.setdefault("tqdm", tq)
    sys.modules.setdefault("tqdm.auto", tqa)
    pkg = stub("k_diffusion")
    pkg.__path__ = [os.path.join(root, "k_diffusion")]
    sys.modules["k_diffusion"] = pkg
    utils = stub("k_diffusion.utils")

    def append_dims(x, target_dims):
        return x[(...,) + (None,) * (target_dims - x.ndim)]

    utils.append_dims = append_dims
    sys.modules["k_diffusion.utils"] = utils
    pkg.utils = utils
    sampling = load_module("k_diffusion.sampling", os.path.join(root, "k_diffusion", "sampling.py"))
    pkg.sampling = sampling
    external = load_module("k_diffusion.external", os.path.join(root, "k_diffusion", "external.py"))
    return sampling, external


# ---------------------------------------------------------------------------------------------
# σ-space denoisers for the peers that take one (diff-sampler, k-diffusion).


def edm_denoiser(net):
    return lambda x, sigma, **kw: call(net, x, sigma)


class DiffSamplerNet:
    """What diff-sampler's get_denoised calls: net(x, t, class_labels=None) -> D (EDM x0 network)."""

    def __init__(self, net):
        self.net = net

    def __call__(self, x, t, class_labels=None, *args):
        return call(self.net, x, t)


class KdInner(torch.nn.Module):
    """The inner model k-diffusion's Discrete*DDPMDenoiser wraps: F(x_t, t_index)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, t):
        return call(self.net, x, t)


# ---------------------------------------------------------------------------------------------
# VP wrappers for the official DPM-Solver / UniPC code.


class EdmAsVp:
    """The EDM model seen as a VP-SDE (α = 1/sqrt(1 + σ²), std = σ α), with t = σ itself: the
    interface NoiseScheduleVP offers (marginal_*, inverse_lambda), in closed form. λ = −log σ."""

    def __init__(self):
        self.schedule = "edm"
        self.T = 80.0
        self.total_N = 1000

    def marginal_log_mean_coeff(self, t):
        return -0.5 * torch.log1p(t * t)

    def marginal_alpha(self, t):
        return torch.exp(self.marginal_log_mean_coeff(t))

    def marginal_std(self, t):
        return t / torch.sqrt(1 + t * t)

    def marginal_lambda(self, t):
        return -torch.log(t)

    def inverse_lambda(self, lamb):
        return torch.exp(-lamb)


def vp_model_fn(net, fixture, ns):
    """model(x_t, t_input) -> the fixture's output in the peers' VP convention."""
    if fixture.startswith("edm_x0"):
        # x_start prediction: the σ-space network at x = x_t/α.
        def model(x, t_input, *a):
            t = t_input.reshape(-1).to(torch.float64)
            return call(net, x * torch.sqrt(1 + t * t)[:, None, None, None], t)
        return model, "x_start"
    return (lambda x, t_input, *a: call(net, x, t_input)), ("v" if fixture.endswith("_v") else "noise")


def times_for(fixture, grid_name, grid):
    """The peer's time variable at each grid point (t = σ for EDM, VP t otherwise)."""
    if fixture.startswith("edm_x0"):
        return list(grid)
    if grid_name == "time_uniform6_vplinear":
        return TIME_UNIFORM_T
    if grid_name == "discrete6":
        return [(n + 1) / 1000.0 for n in DISCRETE_STEPS]  # DPM-Solver's t_n = (n + 1)/N
    raise ValueError(f"no VP time grid for {fixture} on {grid_name}")


def vp_schedule(module, fixture):
    if fixture.startswith("edm_x0"):
        return EdmAsVp()
    if fixture == "vp_linear_eps":
        return module.NoiseScheduleVP("linear", continuous_beta_0=0.1, continuous_beta_1=20.0)
    return module.NoiseScheduleVP("discrete", betas=BETAS.clone(), dtype=torch.float64)


def with_grid(solver, times):
    """Makes the solver's get_time_steps return the case's grid for the whole run (N = steps) and
    keep its own rule for any other call (singlestep DPM-Solver's inner points)."""
    original = solver.get_time_steps
    steps = len(times) - 1

    def get_time_steps(skip_type, t_T, t_0, N, device):
        if N == steps:
            return torch.tensor(times, dtype=torch.float64, device=device)
        return original(skip_type=skip_type, t_T=t_T, t_0=t_0, N=N, device=device)

    solver.get_time_steps = get_time_steps


def run_vp(module, kind, net, fixture, grid_name, grid, x_sigma, wrapper_module=None, **kw):
    """wrapper_module: whose model_wrapper converts the output to ε (UniPC's own copy does not
    broadcast α_t, σ_t over a batch for x_start and v models, so DPM-Solver's, the same formulas
    with expand_dims, serves there)."""
    ns = vp_schedule(module, fixture)
    model, model_type = vp_model_fn(net, fixture, ns)
    model_fn = (wrapper_module or module).model_wrapper(model, ns, model_type=model_type)
    times = times_for(fixture, grid_name, grid)
    t = torch.tensor(times, dtype=torch.float64)
    alpha_0 = ns.marginal_alpha(t[:1]).item()
    alpha_n = ns.marginal_alpha(t[-1:]).item()
    correcting = kw.pop("correcting_x0_fn", None)
    if kind == "dpm_solver":
        solver = module.DPM_Solver(model_fn, ns, algorithm_type=kw.pop("algorithm_type", "dpmsolver++"),
                                   correcting_x0_fn=correcting)
    else:
        solver = module.UniPC(model_fn, ns, algorithm_type="data_prediction", variant=kw.pop("variant"),
                              correcting_x0_fn=correcting)
    with_grid(solver, times)
    steps = len(times) - 1
    # singlestep_fixed takes K = steps/order outer steps: the grid is the outer one.
    steps_arg = steps * kw["order"] if kw.get("method") == "singlestep_fixed" else steps
    with contextlib.redirect_stdout(io.StringIO()):  # UniPC prints every step
        out = solver.sample(x_sigma * alpha_0, steps=steps_arg, t_start=times[0], t_end=times[-1], **kw)
    return out / alpha_n

# ---------------------------------------------------------------------------------------------
# baofff/Analytic-DPM (celeba_lsun_codes/core/inference: the authors' Analytic-DDPM/-DDIM reverse
# processes with the optimal variance from ms_eps = Γ, and their trajectory choices).


def import_analytic_dpm(root):
    """core.inference.{utils, sampler.reverse_ddpm, sampler.reverse_ddim} of the checkout (a
    namespace package: the folder has no __init__.py)."""
    code = os.path.join(root, "celeba_lsun_codes")
    if code not in sys.path:
        sys.path.insert(0, code)
    import importlib
    return (importlib.import_module("core.inference.utils"),
            importlib.import_module("core.inference.sampler.reverse_ddpm"),
            importlib.import_module("core.inference.sampler.reverse_ddim"))


GAMMA_DATA_VAR = 1.5


def synthetic_gamma():
    """ms_eps[t] = Γ_t = E‖ε̂‖²/d, t = 0..N (index 0 unused), the exact value for Gaussian data of
    variance v = GAMMA_DATA_VAR: β̄_t/(ᾱ_t·v + β̄_t). Both codes get this same table, so the cases
    isolate the samplers; with v > 1 the covariance (β̄_t/ᾱ_t)(1 − Γ_t) exceeds the data range's
    bound 1 for ᾱ_t < 1/4 and the clip of Cov[x0|x_t] to [0, 1] acts."""
    abar = ALPHAS_CUMPROD.numpy()
    gamma = (1 - abar) / (abar * GAMMA_DATA_VAR + (1 - abar))
    return np.concatenate([[0.0], gamma])


@contextlib.contextmanager
def seeded_randn_like(shape, skip=0):
    """torch.randn_like drawn as scoreflow's NoiseSource does (row b from a CPU generator seeded
    SEEDS[b], float32), for peers that call torch.randn_like for their noise."""
    draw = seeded_noise_sampler(shape, skip)
    saved = torch.randn_like
    torch.randn_like = lambda x, *a, **k: draw(None, None).to(x.dtype)
    try:
        yield
    finally:
        torch.randn_like = saved


# ---------------------------------------------------------------------------------------------
# zju-pi/diff-sampler amed-solver-main/solvers_amed.py: AMED-Solver and AMED-Plugin.


def load_amed(amed_dir):
    """solvers_amed with amed-solver-main's own solver_utils (its `from solver_utils import *`
    would otherwise pick up diff-solvers-main's module of the same name)."""
    saved = sys.modules.pop("solver_utils", None)
    load_module("solver_utils", os.path.join(amed_dir, "solver_utils.py"))
    mod = load_module("solvers_amed", os.path.join(amed_dir, "solvers_amed.py"), amed_dir)
    if saved is not None:
        sys.modules["solver_utils"] = saved
    return mod


class _NoHook:
    def remove(self):
        pass


class AmedTable:
    """An AMED_predictor that returns fixed per-step outputs (r, scale_dir, scale_time), looked up
    by the step's σ: what a trained table-mode predictor gives, so both codes get the same
    predictor outputs. rows: [(r, c, a)] per interval of `grid`."""

    def __init__(self, grid, rows, dtype=torch.float64):
        self.grid, self.rows, self.dtype = grid, rows, dtype

    def __call__(self, unet_enc, t_cur, t_next):
        i = min(range(len(self.grid) - 1), key=lambda k: abs(self.grid[k] - float(t_cur.reshape(-1)[0])))
        b = unet_enc.shape[0]
        return tuple(torch.full((b,), v, dtype=self.dtype) for v in self.rows[i])


def run_amed(amed, fn, net, grid, rows, x, dtype=torch.float64, **kw):
    """fn from solvers_amed on exactly `grid` (its get_schedule replaced by the grid, as the other
    diff-sampler cases pass t_steps) with the table predictor; the bottleneck hook returns zeros
    (scoreflow's table mode has no features either). dtype: the state's (and grid's, predictor
    outputs') dtype — float64 for the references, float32 to see the method's own round-off."""
    t_steps = torch.tensor(grid, dtype=dtype)
    amed.get_schedule = lambda *a, **k: t_steps
    amed.init_hook = lambda net, class_labels=None: ([torch.zeros(x.shape[0], 8, 8, 8, dtype=dtype)], _NoHook())
    return fn(net, (x / grid[0]).to(dtype), num_steps=len(grid), AMED_predictor=AmedTable(grid, rows, dtype), **kw)



# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--diff-sampler", required=True, help="checkout of zju-pi/diff-sampler")
    ap.add_argument("--k-diffusion", required=True, help="checkout of crowsonkb/k-diffusion")
    ap.add_argument("--dpm-solver", required=True, help="checkout of LuChengTHU/dpm-solver")
    ap.add_argument("--unipc", required=True, help="checkout of wl-zhao/UniPC")
    ap.add_argument("--analytic-dpm", required=True, help="checkout of baofff/Analytic-DPM")
    ap.add_argument("--out", required=True, help="output folder (tests/data/peer_refs/)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)

    ds_dir = os.path.join(args.diff_sampler, "diff-solvers-main")
    ds_utils = load_module("solver_utils", os.path.join(ds_dir, "solver_utils.py"), ds_dir)
    ds = load_module("ds_solvers", os.path.join(ds_dir, "solvers.py"), ds_dir)
    kd, kd_external = import_k_diffusion(args.k_diffusion)
    dpms = load_module("dpm_solver_pytorch", os.path.join(args.dpm_solver, "dpm_solver_pytorch.py"))
    unipc = load_module("uni_pc", os.path.join(args.unipc, "uni_pc.py"))
    amed_dir = os.path.join(args.diff_sampler, "amed-solver-main")
    amed = load_amed(amed_dir)
    adpm_utils, adpm_ddpm, adpm_ddim = import_analytic_dpm(args.analytic_dpm)

    nets = make_fixtures(args.out)
    cases, arrays = [], {}

    def add(case_id, peer, call_text, fixture, grid_name, sampler, sampler_args, run, note=None, tol=None,
            seeds=None):
        grid = GRIDS[grid_name]
        x = initial_state(fixture, grid_name, grid)
        out = run(x.clone(), grid)
        arrays[case_id + ".x"] = x.float().numpy()
        arrays[case_id + ".out"] = out.float().numpy()
        case = {"id": case_id, "peer": peer, "call": call_text, "fixture": fixture, "grid": grid_name,
                "sampler": sampler, "args": sampler_args}
        if seeds:
            case["seeds"] = seeds
        if note:
            case["note"], case["tolerance"] = note, tol
        cases.append(case)

    # --- zju-pi/diff-sampler (diff-solvers-main/solvers.py), EDM x0 network, t_steps = the grid.
    ds_net = DiffSamplerNet(nets["edm_x0"])

    def ds_run(fn, **kw):
        def run(x, grid):
            t_steps = torch.tensor(grid, dtype=torch.float64)
            return fn(ds_net, x / t_steps[0], t_steps=t_steps, num_steps=len(grid), **kw)
        return run

    for name, fn, sampler, kw, extra in (
            ("euler", ds.euler_sampler, "euler", {}, ""),
            ("heun", ds.heun_sampler, "heun", {}, ""),
            ("dpm2", ds.dpm_2_sampler, "dpm_solver_2", {}, ""),
            ("dpm2_afs", ds.dpm_2_sampler, "dpm_solver_2", {"afs": True}, "afs=true"),
            ("ipndm", ds.ipndm_sampler, "ipndm", {}, ""),
            ("ipndm_afs", ds.ipndm_sampler, "ipndm", {"afs": True}, "afs=true"),
            ("ipndm_v", ds.ipndm_v_sampler, "ipndm_v", {}, ""),
            ("ipndm_v_order3", ds.ipndm_v_sampler, "ipndm_v", {"max_order": 3}, "max_order=3"),
            ("ipndm_v_afs", ds.ipndm_v_sampler, "ipndm_v", {"afs": True}, "afs=true"),
            ("dpmpp_2m", ds.dpm_pp_sampler, "dpmpp_2m", {"max_order": 2}, ""),
            ("dpmpp_3m", ds.dpm_pp_sampler, "dpmpp_3m", {"max_order": 3}, ""),
            ("dpmpp_3m_afs", ds.dpm_pp_sampler, "dpmpp_3m", {"max_order": 3, "afs": True}, "afs=true"),
            ("unipc_bh1_o1", ds.unipc_sampler, "unipc", {"max_order": 1, "variant": "bh1"}, "variant=bh1,order=1"),
            ("unipc_bh1_o2", ds.unipc_sampler, "unipc", {"max_order": 2, "variant": "bh1"}, "variant=bh1,order=2"),
            ("unipc_bh2_o2", ds.unipc_sampler, "unipc", {"max_order": 2, "variant": "bh2"}, "variant=bh2,order=2"),
            ("unipc_bh2_o3", ds.unipc_sampler, "unipc", {"max_order": 3, "variant": "bh2"}, "variant=bh2,order=3"),
    ):
        call_text = "diff-solvers-main/solvers.py %s(%s)" % (fn.__name__, ", ".join("%s=%r" % kv for kv in kw.items()))
        add("ds_" + name, "diff-sampler", call_text, "edm_x0", "karras5", sampler, extra, ds_run(fn, **kw))
    # diff-sampler lowers the order at the end of every run; the official DPM-Solver only below 10 steps.
    add("ds_dpmpp_3m_12steps", "diff-sampler", "solvers.py dpm_pp_sampler(max_order=3)", "edm_x0", "karras12",
        "dpmpp_3m", "lower_order_final=always", ds_run(ds.dpm_pp_sampler, max_order=3))
    # denoise_to_zero=True: one more call, x = D(x, σ_min) (scoreflow's --final denoise).
    add("ds_heun_denoise_to_zero", "diff-sampler", "solvers.py heun_sampler(denoise_to_zero=True)", "edm_x0", "karras5",
        "heun", "", ds_run(ds.heun_sampler, denoise_to_zero=True))
    cases[-1]["final"] = "denoise"
    # DEIS tAB: diff-sampler integrates the coefficients with an N-point rectangle sum (error O(1/N));
    # scoreflow by 16-point Gauss-Legendre, exact to rounding. Its default N = 10^4 is a documented
    # difference; with N = 10^6 its coefficients converge to the library's.
    for order, n_quad in ((2, 10000), (3, 10000), (2, 1000000), (3, 1000000)):
        def deis_run(x, grid, order=order, n_quad=n_quad):
            t_steps = torch.tensor(grid, dtype=torch.float64)
            coeffs = ds_utils.get_deis_coeff_list(t_steps, order, N=n_quad, deis_mode="tab")
            return ds.deis_sampler(ds_net, x / t_steps[0], t_steps=t_steps, num_steps=len(grid), max_order=order,
                                   coeff_list=coeffs)
        default = n_quad == 10000
        add("ds_deis_tab_o%d" % order + ("" if default else "_n1e6"), "diff-sampler",
            "solvers.py deis_sampler(max_order=%d, coeff_list=get_deis_coeff_list(N=%d, deis_mode='tab'))"
            % (order, n_quad), "edm_x0", "karras5", "deis", "order=%d" % order, deis_run,
            note=("diff-sampler's default 10^4-point rectangle sum for the tAB coefficients (O(1/N) error; "
                  "measured 1.8e-5 (order 2) and 2.5e-4 (order 3) here) vs scoreflow's Gauss-Legendre"
                  if default else None), tol=(5e-4 if default else None))

    # diff-sampler passes x0 of DPM-Solver++ and UniPC through dynamic thresholding unconditionally:
    # on a network whose x0 leaves [-1, 1] that is scoreflow's thresholding=dynamic.
    ds_wide = DiffSamplerNet(nets["edm_x0_wide"])
    for name, fn, sampler, kw, extra in (
            ("dpmpp_3m_wide", ds.dpm_pp_sampler, "dpmpp_3m", {"max_order": 3}, "thresholding=dynamic"),
            ("unipc_bh2_o3_wide", ds.unipc_sampler, "unipc", {"max_order": 3, "variant": "bh2"},
             "variant=bh2,order=3,thresholding=dynamic"),
    ):
        def run(x, grid, fn=fn, kw=kw):
            t_steps = torch.tensor(grid, dtype=torch.float64)
            return fn(ds_wide, x / t_steps[0], t_steps=t_steps, num_steps=len(grid), **kw)
        call_text = "solvers.py %s(%s) on x0 in (-8, 8)" % (fn.__name__, ", ".join("%s=%r" % kv for kv in kw.items()))
        add("ds_" + name, "diff-sampler", call_text, "edm_x0_wide", "karras5", sampler, extra, run)

    # --- crowsonkb/k-diffusion (k_diffusion/sampling.py), σ-space denoisers.
    edm = edm_denoiser(nets["edm_x0"])
    vp_eps = kd_external.DiscreteEpsDDPMDenoiser(KdInner(nets["vp_discrete_eps"]), ALPHAS_CUMPROD, quantize=False)
    vp_v = kd_external.DiscreteVDDPMDenoiser(KdInner(nets["vp_discrete_v"]), ALPHAS_CUMPROD, quantize=False)

    def kd_run(fn, model, **kw):
        if "sde" in fn.__name__:  # with eta = 0 its noise is never drawn, but a sampler must exist
            kw = dict(kw, noise_sampler=seeded_noise_sampler(SHAPE))
        return lambda x, grid: fn(model, x, torch.tensor(grid, dtype=torch.float64), disable=True, **kw)

    for name, fn, sampler, extra, fixture, model, grid_name, kw in (
            ("euler", kd.sample_euler, "euler", "", "edm_x0", edm, "karras5_zero", {}),
            ("heun", kd.sample_heun, "heun", "", "edm_x0", edm, "karras5_zero", {}),
            ("dpm_2", kd.sample_dpm_2, "dpm_solver_2", "", "edm_x0", edm, "karras5_zero", {}),
            ("dpmpp_2m", kd.sample_dpmpp_2m, "dpmpp_2m", "", "edm_x0", edm, "karras5_zero", {}),
            # k-diffusion never lowers the order: on a grid ending above 0 its last step is 2M.
            ("dpmpp_2m_sigma_min", kd.sample_dpmpp_2m, "dpmpp_2m", "lower_order_final=false", "edm_x0", edm,
             "karras5", {}),
            ("dpmpp_2m_sde_eta0", kd.sample_dpmpp_2m_sde, "dpmpp_2m_sde", "eta=0", "edm_x0", edm, "karras5_zero",
             {"eta": 0.0}),
            ("dpmpp_2m_sde_heun_eta0", kd.sample_dpmpp_2m_sde, "dpmpp_2m_sde", "eta=0,solver_type=heun", "edm_x0",
             edm, "karras5_zero", {"eta": 0.0, "solver_type": "heun"}),
            ("euler_vp_eps", kd.sample_euler, "euler", "", "vp_discrete_eps", vp_eps, "karras6_vp_zero", {}),
            ("heun_vp_eps", kd.sample_heun, "heun", "", "vp_discrete_eps", vp_eps, "karras6_vp_zero", {}),
            ("dpmpp_2m_vp_eps", kd.sample_dpmpp_2m, "dpmpp_2m", "", "vp_discrete_eps", vp_eps, "karras6_vp_zero", {}),
            ("euler_vp_v", kd.sample_euler, "euler", "", "vp_discrete_v", vp_v, "karras6_vp_zero", {}),
            ("dpmpp_2m_vp_v", kd.sample_dpmpp_2m, "dpmpp_2m", "", "vp_discrete_v", vp_v, "karras6_vp_zero", {}),
    ):
        call_text = "k_diffusion/sampling.py %s(%s)" % (fn.__name__, ", ".join("%s=%r" % kv for kv in kw.items()))
        add("kd_" + name, "k-diffusion", call_text, fixture, grid_name, sampler, extra, kd_run(fn, model, **kw))
    for solver_type in ("midpoint", "heun"):
        extra = "" if solver_type == "midpoint" else ",solver_type=heun"
        add("kd_dpmpp_2m_sde_eta1_" + solver_type, "k-diffusion",
            "sample_dpmpp_2m_sde(eta=1.0, solver_type=%r, noise_sampler=per-row generators seeded %s)"
            % (solver_type, SEEDS), "edm_x0", "karras5_zero", "dpmpp_2m_sde", "eta=1" + extra,
            lambda x, grid, st=solver_type: kd.sample_dpmpp_2m_sde(
                edm, x, torch.tensor(grid, dtype=torch.float64), disable=True, eta=1.0, solver_type=st,
                noise_sampler=seeded_noise_sampler(SHAPE)), seeds=SEEDS)
    add("kd_dpmpp_3m_sde_eta0", "k-diffusion", "sample_dpmpp_3m_sde(eta=0.0)", "edm_x0", "karras5_zero", "dpmpp_3m",
        "lower_order_final=false", kd_run(kd.sample_dpmpp_3m_sde, edm, eta=0.0),
        note="k-diffusion's 3M warm-up (second) step is the 'taylor' 2nd-order update (phi_2*D1), the official "
             "DPM-Solver's is the 'dpmsolver' one (-phi_1/2*D1); every other step is the same (measured 4.2e-3)",
        tol=1e-2)

    # --- LuChengTHU/dpm-solver (dpm_solver_pytorch.py), official DPM-Solver++ / DPM-Solver.
    for name, fixture, grid_name, sampler, extra, kw in (
            ("2m", "edm_x0", "karras5", "dpmpp_2m", "", {"order": 2}),
            ("3m", "edm_x0", "karras5", "dpmpp_3m", "", {"order": 3}),
            ("3m_12steps", "edm_x0", "karras12", "dpmpp_3m", "", {"order": 3}),
            ("2m_vp_linear", "vp_linear_eps", "time_uniform6_vplinear", "dpmpp_2m", "", {"order": 2}),
            ("3m_vp_linear", "vp_linear_eps", "time_uniform6_vplinear", "dpmpp_3m", "", {"order": 3}),
            ("2m_discrete_eps", "vp_discrete_eps", "discrete6", "dpmpp_2m", "", {"order": 2}),
            ("3m_discrete_v", "vp_discrete_v", "discrete6", "dpmpp_3m", "", {"order": 3}),
            ("2m_no_lower_order_final", "edm_x0", "karras5", "dpmpp_2m", "lower_order_final=false",
             {"order": 2, "lower_order_final": False}),
    ):
        kw = dict(kw, method="multistep", skip_type="logSNR")
        call_text = "DPM_Solver(algorithm_type='dpmsolver++').sample(%s)" % ", ".join("%s=%r" % kv for kv in kw.items())
        add("dpms_" + name, "dpm-solver", call_text, fixture, grid_name, sampler, extra,
            lambda x, grid, f=fixture, g=grid_name, kw=kw: run_vp(dpms, "dpm_solver", nets[f], f, g, grid, x, **dict(kw)))
    for name, extra, kw in (
            ("3m_wide", "", {"order": 3}),
            ("3m_wide_thresholding", "thresholding=dynamic", {"order": 3, "correcting_x0_fn": "dynamic_thresholding"}),
    ):
        kw = dict(kw, method="multistep", skip_type="logSNR")
        add("dpms_" + name, "dpm-solver", "DPM_Solver(algorithm_type='dpmsolver++', correcting_x0_fn=%r).sample(order=3)"
            % kw.get("correcting_x0_fn"), "edm_x0_wide", "karras5", "dpmpp_3m", extra,
            lambda x, grid, kw=kw: run_vp(dpms, "dpm_solver", nets["edm_x0_wide"], "edm_x0_wide", "karras5", grid, x,
                                          **dict(kw)))
    kw = {"order": 2, "method": "singlestep_fixed", "skip_type": "logSNR", "algorithm_type": "dpmsolver"}
    add("dpms_singlestep_2", "dpm-solver", "DPM_Solver(algorithm_type='dpmsolver').sample(order=2, "
        "method='singlestep_fixed', skip_type='logSNR')", "edm_x0", "karras5", "dpm_solver_2", "",
        lambda x, grid: run_vp(dpms, "dpm_solver", nets["edm_x0"], "edm_x0", "karras5", grid, x, **dict(kw)))

    # --- wl-zhao/UniPC (uni_pc.py), official UniPC with data prediction.
    for name, fixture, grid_name, variant, order in (
            ("bh1_o1", "edm_x0", "karras5", "bh1", 1),
            ("bh1_o2", "edm_x0", "karras5", "bh1", 2),
            ("bh1_o3", "edm_x0", "karras5", "bh1", 3),
            ("bh2_o2", "edm_x0", "karras5", "bh2", 2),
            ("bh2_o3", "edm_x0", "karras5", "bh2", 3),
            ("bh2_o3_12steps", "edm_x0", "karras12", "bh2", 3),
            ("bh2_o3_vp_linear", "vp_linear_eps", "time_uniform6_vplinear", "bh2", 3),
            ("bh1_o2_discrete_eps", "vp_discrete_eps", "discrete6", "bh1", 2),
            ("bh2_o3_wide_thresholding", "edm_x0_wide", "karras5", "bh2", 3),
    ):
        kw = {"variant": variant, "order": order, "method": "multistep", "skip_type": "logSNR",
              "lower_order_final": True}
        extra = ""
        if name.endswith("_thresholding"):
            kw["correcting_x0_fn"], extra = "dynamic_thresholding", ",thresholding=dynamic"
        call_text = "UniPC(algorithm_type='data_prediction', variant=%r).sample(order=%d, method='multistep', " \
                    "lower_order_final=True)" % (variant, order)
        add("unipc_" + name, "UniPC", call_text, fixture, grid_name, "unipc",
            "variant=%s,order=%d" % (variant, order) + extra,
            lambda x, grid, f=fixture, g=grid_name, kw=kw: run_vp(unipc, "unipc", nets[f], f, g, grid, x,
                                                                   wrapper_module=dpms, **dict(kw)))


    # --- baofff/Analytic-DPM (celeba_lsun_codes/core/inference/sampler): Analytic-DDPM and
    # Analytic-DDIM with the optimal variance from the same Γ table (synthetic_gamma), on the
    # VP-discrete ε fixture, the authors' way: betas = [0] + β (timesteps 1..N), the network called
    # at n − 1 (their runner's `eps_model = lambda x, t: model(x, t - 1)`), rescale_timesteps=True,
    # noise capped on the step into x_{τ1} (clip_sigma_idx=1; clip_pixel 2 for Analytic-DDPM and 1
    # for Analytic-DDIM in their run scripts). Their trajectory (`_choice_steps`) is the grid.
    ms_eps = synthetic_gamma()
    arrays["adpm.gamma"] = ms_eps[1:].astype(np.float64)
    betas0 = np.append(0.0, BETAS.numpy())
    adpm_net = nets["vp_discrete_eps"]
    adpm_eps = lambda x, t: call(adpm_net, x, t - 1)
    trajectories = []
    for typ, k in (("linear", 6), ("dp_seg", 6), ("quad_ddim", 6), ("linear", 10), ("linear", 25), ("dp_seg", 10),
                   ("linear", 100)):
        ns = adpm_utils._choice_steps(1000, k, typ, ms_eps=ms_eps, betas=betas0)
        trajectories.append({"type": typ, "N": 1000, "K": k, "steps": [int(n) for n in ns]})
        if k == 6:
            GRIDS["adpm_%s%d" % (typ, k)] = [float(DISCRETE_SIGMAS[n - 1]) for n in ns[::-1]] + [0.0]

    def adpm_run(fn, typ, skip=0, **kw):
        def run(x, grid):
            n_top = adpm_utils._choice_steps(1000, 6, typ, ms_eps=ms_eps, betas=betas0)[-1]
            x_init = x * math.sqrt(ALPHAS_CUMPROD[n_top - 1])
            with seeded_randn_like(SHAPE, skip):
                kw_all = dict(kw, sample_steps=6, eps_model=adpm_eps)
                if fn is not adpm_ddim.reverse_ddim_naive or typ != "linear":
                    kw_all["steps_type"] = typ
                return fn(x_init, betas0, True, **kw_all)  # at s = 0 the state is x0 itself
        return run

    for name, fn, typ, sampler, extra, kw in (
            ("ddpm_linear6", adpm_ddpm.reverse_ddpm_ms_eps, "linear", "analytic_ddpm", "",
             {"clip_sigma_idx": 1, "clip_pixel": 2, "ms_eps": ms_eps}),
            ("ddpm_dp_seg6", adpm_ddpm.reverse_ddpm_ms_eps, "dp_seg", "analytic_ddpm", "",
             {"clip_sigma_idx": 1, "clip_pixel": 2, "ms_eps": ms_eps}),
            ("ddpm_quad_ddim6", adpm_ddpm.reverse_ddpm_ms_eps, "quad_ddim", "analytic_ddpm", "",
             {"clip_sigma_idx": 1, "clip_pixel": 2, "ms_eps": ms_eps}),
            ("ddpm_noclip_linear6", adpm_ddpm.reverse_ddpm_ms_eps, "linear", "analytic_ddpm", "sigma2_clip=0",
             {"clip_sigma_idx": 0, "ms_eps": ms_eps}),
            ("ddim_linear6", adpm_ddim.reverse_ddim_ms_eps, "linear", "analytic_ddim", "",
             {"eta": 0.0, "clip_sigma_idx": 1, "clip_pixel": 1, "ms_eps": ms_eps}),
            ("ddim_dp_seg6", adpm_ddim.reverse_ddim_ms_eps, "dp_seg", "analytic_ddim", "",
             {"eta": 0.0, "clip_sigma_idx": 1, "clip_pixel": 1, "ms_eps": ms_eps}),
            ("ddim_y2_linear6", adpm_ddim.reverse_ddim_ms_eps, "linear", "analytic_ddim", "sigma2_clip=2",
             {"eta": 0.0, "clip_sigma_idx": 1, "clip_pixel": 2, "ms_eps": ms_eps}),
            ("ddim_eta05_linear6", adpm_ddim.reverse_ddim_ms_eps, "linear", "analytic_ddim", "eta=0.5",
             {"eta": 0.5, "clip_sigma_idx": 1, "clip_pixel": 1, "ms_eps": ms_eps}),
            ("ddim_naive_linear6", adpm_ddim.reverse_ddim_naive, "linear", "analytic_ddim", "noise=false", {"eta": 0.0}),
    ):
        shown = {k: v for k, v in kw.items() if k != "ms_eps"}
        call_text = "celeba_lsun_codes/core/inference/sampler %s(steps_type=%r, sample_steps=6, %s%s)" % (
            fn.__name__, typ, ", ".join("%s=%r" % kv for kv in shown.items()), ", ms_eps=Γ" if "ms_eps" in kw else "")
        add("adpm_" + name, "Analytic-DPM", call_text, "vp_discrete_eps", "adpm_%s6" % typ, sampler, extra,
            adpm_run(fn, typ, **kw), seeds=SEEDS)
        cases[-1]["gamma"] = "adpm.gamma"  # the naive DDIM uses none; scoreflow's analytic_ddim reads one anyway
    # The same as adpm_ddpm_linear6 with the noise stream one draw further on, as `scoreflow sample`
    # has it (the initial noise comes first from the same generators; --init-noise then replaces it):
    # the stochastic case the CLI suite runs.
    add("adpm_ddpm_linear6_drawn", "Analytic-DPM", "reverse_ddpm_ms_eps(steps_type='linear', sample_steps=6, "
        "clip_sigma_idx=1, clip_pixel=2, ms_eps=Γ), noise one draw on", "vp_discrete_eps", "adpm_linear6",
        "analytic_ddpm", "", adpm_run(adpm_ddpm.reverse_ddpm_ms_eps, "linear", skip=1, clip_sigma_idx=1, clip_pixel=2,
                                      ms_eps=ms_eps), seeds=SEEDS)
    cases[-1]["gamma"], cases[-1]["skip_draws"] = "adpm.gamma", 1

    # --- zju-pi/diff-sampler amed-solver-main/solvers_amed.py: AMED-Solver and AMED-Plugin given
    # the same predictor outputs (a per-step table of r, scale_dir, scale_time; values exact in
    # float32) on the EDM x0 fixture, the grid ending at σ_min (the authors' denoise_to_zero=False).
    amed_rows = [(0.375, 1.0078125, 1.0), (0.5, 0.9921875, 1.0625), (0.625, 1.00390625, 0.9375),
                 (0.4375, 0.99609375, 1.03125), (0.5625, 1.0, 0.96875)]
    for name, fn, sampler, student, afs, kw in (
            ("solver", amed.amed_sampler, "amed", "amed", False, {}),
            ("solver_afs", amed.amed_sampler, "amed", "amed", True, {}),
            ("plugin_euler", amed.euler_sampler, "amed_plugin", "euler", False, {}),
            ("plugin_ipndm", amed.ipndm_sampler, "amed_plugin", "ipndm", False, {"max_order": 4}),
            ("plugin_ipndm_afs", amed.ipndm_sampler, "amed_plugin", "ipndm", True, {"max_order": 4}),
            ("plugin_dpmpp_2m", amed.dpm_pp_sampler, "amed_plugin", "dpmpp_2m", False,
             {"max_order": 2, "predict_x0": True, "lower_order_final": True}),
    ):
        kw = dict(kw, afs=afs)
        call_text = "amed-solver-main/solvers_amed.py %s(%s, AMED_predictor=per-step table)" % (
            fn.__name__, ", ".join("%s=%r" % kv for kv in kw.items()))
        add("amed_" + name, "diff-sampler", call_text, "edm_x0", "karras5", sampler,
            "afs=true" if afs else "",
            lambda x, grid, fn=fn, kw=kw: run_amed(amed, fn, ds_net, grid, amed_rows, x, **kw))
        cases[-1]["amed_table"] = {"student": student, "afs": afs, "rows": [list(r) for r in amed_rows]}
        if student == "ipndm":
            # The peer's own code run with a float32 state (grid and predictor outputs float32 too):
            # how far float32 alone moves this method on this fixture.
            x = initial_state("edm_x0", "karras5", GRIDS["karras5"])
            own32 = run_amed(amed, fn, ds_net, GRIDS["karras5"], amed_rows, x, dtype=torch.float32, **kw)
            own64 = torch.from_numpy(arrays["amed_" + name + ".out"]).double()
            spread = float((own32.double() - own64).norm() / own64.norm())
            cases[-1]["peer_float32_rel_l2"] = spread
            cases[-1]["note"] = ("float32 round-off, not a different method: the peer's own code run with a float32 "
                                 "state differs from its float64 reference by %.3g; the library (float32) is within "
                                 "the same order (2.1e-5 without AFS, 1.3e-5 with), while every other AMED case is "
                                 "within 8.3e-7 and a changed table row moves it by > 1e-4" % spread)
            cases[-1]["tolerance"] = 5e-5

    # Where two peers compute the same method on the same network, grid and start, how far apart
    # they are (relative L2): the numbers docs/samplers.md quotes.
    def rel(a, b):
        a, b = arrays[a + ".out"].astype(np.float64), arrays[b + ".out"].astype(np.float64)
        return float(np.linalg.norm(a - b) / np.linalg.norm(b))

    cross = []
    for a, b, what in (
            ("ds_dpmpp_2m", "dpms_2m", "DPM-Solver++(2M), 5 steps"),
            ("ds_dpmpp_3m", "dpms_3m", "DPM-Solver++(3M), 5 steps"),
            ("ds_dpmpp_3m_12steps", "dpms_3m_12steps", "DPM-Solver++(3M), 12 steps: order lowered always vs below 10"),
            ("kd_dpmpp_2m_sigma_min", "dpms_2m", "DPM-Solver++(2M) ending at σ_min: no lowering vs official"),
            ("ds_unipc_bh2_o2", "unipc_bh2_o2", "UniPC bh2 order 2, 5 steps"),
            ("ds_unipc_bh2_o3", "unipc_bh2_o3", "UniPC bh2 order 3, 5 steps"),
            ("ds_unipc_bh1_o2", "unipc_bh1_o2", "UniPC bh1 order 2, 5 steps"),
            ("ds_dpm2", "dpms_singlestep_2", "DPM-Solver-2 (diff-sampler) vs singlestep DPM-Solver-2 (official)"),
            ("ds_dpmpp_3m_wide", "dpms_3m_wide", "DPM-Solver++(3M), x0 in (-8, 8): diff-sampler thresholds, "
                                                 "the official code by default not"),
            ("ds_dpmpp_3m_wide", "dpms_3m_wide_thresholding", "the same with the official code's dynamic thresholding"),
            ("ds_unipc_bh2_o3_wide", "unipc_bh2_o3_wide_thresholding", "UniPC bh2 order 3 with thresholding in both"),
    ):
        if a + ".out" in arrays and b + ".out" in arrays:
            cross.append({"a": a, "b": b, "what": what, "rel_l2": rel(a, b)})
            print("%-24s vs %-22s %.3g  %s" % (a, b, cross[-1]["rel_l2"], what))

    np.savez(os.path.join(args.out, "refs.npz"), **arrays)
    doc = {"generator": "scripts/gen_peer_references.py", "shape": [BATCH] + list(SHAPE), "grids": GRIDS,
           "discrete_timesteps": DISCRETE_STEPS, "time_uniform_t": TIME_UNIFORM_T, "cases": cases, "cross_peer": cross,
           "analytic_dpm": {"gamma": "refs.npz adpm.gamma: Γ_t for t = 1..N (ε convention), Gaussian data of "
                                     "variance %g" % GAMMA_DATA_VAR, "trajectories": trajectories}}
    with open(os.path.join(args.out, "cases.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    peers = sorted({c["peer"] for c in cases})
    print("wrote %d cases over %d peers (%s) to %s" % (len(cases), len(peers), ", ".join(peers), args.out))


if __name__ == "__main__":
    main()
