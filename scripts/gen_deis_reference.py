#!/usr/bin/python3
"""Reference values for DEIS (Zhang & Chen 2023, arXiv:2204.13902) tAB and rhoAB, orders 1-3 with warm-up,
on the exact Gaussian denoiser, written from the paper's VP form independently of samplers/deis.cpp:

  tAB: VPSDE with beta(t) = beta_min + beta_d t, alpha(t) = exp(-(beta_min t + beta_d t^2/2)/2), s = sqrt(1 - alpha^2);
  PF-ODE dx/dt = -beta x/2 + beta eps/(2 s). Exponential integrator over [t, t'] with eps replaced by its Lagrange
  polynomial in t through the last q points (q = min(order, steps taken + 1)):
      x_t' = (alpha_t'/alpha_t) x_t + sum_j eps_j * int_t^t' (alpha_t'/alpha_tau) beta_tau/(2 s_tau) l_j(tau) dtau,
  the integral by scipy.integrate.quad in t; grid times t_i from sigma(t) = s/alpha by brentq.
  rhoAB: v = x_t/alpha, dv/drho = eps with rho = sigma, the Lagrange polynomial in rho integrated by quad.
  The step into sigma = 0 returns the data prediction D(x, sigma_{N-1}) (as the sampler documents).

The VP time of a model whose schedule is not vp_linear: beta fitted so that sigma(1e-3) = sigma_min and
sigma(1) = sigma_max (EDM: 0.002, 80); for the builtin vp_linear schedule the model's own (0.1, 20).
Data N(mu, s^2 I): D(x, sigma) = mu + s^2/(s^2 + sigma^2) (x - mu) in sigma-space.
Writes tests/data/deis_reference.json. Run: /usr/bin/python3 scripts/gen_deis_reference.py
"""
import json
import math
import os

import numpy as np
from scipy import integrate, optimize

MU, S = 0.3, 0.5


def denoise(x, sigma):
    return MU + S * S / (S * S + sigma * sigma) * (x - MU)


def fitted_beta(sigma_min, sigma_max, t_eps=1e-3):
    """(beta_min, beta_d) with log(1 + sigma^2) = beta_min t + beta_d t^2 / 2 through (t_eps, sigma_min), (1, sigma_max)."""
    a = np.array([[t_eps, t_eps * t_eps / 2], [1.0, 0.5]])
    b = np.array([math.log(1 + sigma_min ** 2), math.log(1 + sigma_max ** 2)])
    beta_min, beta_d = np.linalg.solve(a, b)
    return beta_min, beta_d


class Vp:
    def __init__(self, beta_min, beta_d):
        self.b0, self.bd = beta_min, beta_d

    def log_alpha(self, t):
        return -0.5 * (self.b0 * t + 0.5 * self.bd * t * t)

    def alpha(self, t):
        return math.exp(self.log_alpha(t))

    def s(self, t):
        return math.sqrt(-math.expm1(2 * self.log_alpha(t)))

    def sigma(self, t):
        return self.s(t) / self.alpha(t)

    def t_of_sigma(self, sigma):
        # sigma(t) is increasing from the root of beta_min t + beta_d t^2/2 = 0 (t = 0 or -2 beta_min/beta_d).
        lo = max(0.0, -2 * self.b0 / self.bd) * (1 + 1e-15) + 1e-300
        return optimize.brentq(lambda t: self.sigma(t) - sigma, lo, 10.0, xtol=1e-300, rtol=1e-15, maxiter=500)

    def eps_integrand(self, t_next, tau):
        beta = self.b0 + self.bd * tau
        return self.alpha(t_next) / self.alpha(tau) * beta / (2 * self.s(tau))


def lagrange(nodes, j, tau):
    out = 1.0
    for k, node in enumerate(nodes):
        if k != j:
            out *= (tau - node) / (nodes[j] - node)
    return out


def quad(f, a, b):
    val, _ = integrate.quad(f, a, b, epsabs=1e-15, epsrel=1e-13, limit=200)
    return val


def deis_tab(x_sigma, sigmas, order, vp):
    """x_sigma at sigmas[0] in sigma-space; runs in VP x_t; returns sigma-space x at sigmas[-1]."""
    ts = [vp.t_of_sigma(s) if s > 0 else None for s in sigmas]
    x = vp.alpha(ts[0]) * x_sigma
    hist = []  # (t_j, eps_j), newest last
    for i in range(len(sigmas) - 1):
        sig, t = sigmas[i], ts[i]
        xs = x / vp.alpha(t)
        eps = (xs - denoise(xs, sig)) / sig
        hist = (hist + [(t, eps)])[-order:]
        if sigmas[i + 1] == 0:
            return denoise(xs, sig)
        t_next = ts[i + 1]
        nodes = [h[0] for h in hist]
        x_next = vp.alpha(t_next) / vp.alpha(t) * x
        for j, (_, eps_j) in enumerate(hist):
            c = quad(lambda tau: vp.eps_integrand(t_next, tau) * lagrange(nodes, j, tau), t, t_next)
            x_next = x_next + c * eps_j
        x = x_next
    return x / vp.alpha(ts[-1])


def deis_rhoab(x_sigma, sigmas, order):
    v = x_sigma.copy()
    hist = []
    for i in range(len(sigmas) - 1):
        rho = sigmas[i]
        eps = (v - denoise(v, rho)) / rho
        hist = (hist + [(rho, eps)])[-order:]
        if sigmas[i + 1] == 0:
            return denoise(v, rho)
        nodes = [h[0] for h in hist]
        for j, (_, eps_j) in enumerate(hist):
            v = v + quad(lambda r: lagrange(nodes, j, r), rho, sigmas[i + 1]) * eps_j
    return v


def main():
    sig = [10.0, 4.2, 1.6, 0.55, 0.17, 0.05, 0.02]
    grids = {"zero": sig + [0.0], "positive": sig}
    x_t = np.array([1.3, -0.7, 0.25]) * sig[0]
    edm = Vp(*fitted_beta(0.002, 80.0))
    vp_linear = Vp(0.1, 20.0 - 0.1)
    cases = []
    for gname, grid in grids.items():
        for order in (1, 2, 3):
            for schedule, vp in (("edm", edm), ("vp_linear", vp_linear)):
                cases.append({"schedule": schedule, "args": "order=%d" % order, "grid": gname,
                              "out": deis_tab(x_t.copy(), grid, order, vp).tolist()})
            cases.append({"schedule": "edm", "args": "order=%d,variant=rhoab" % order, "grid": gname,
                          "out": deis_rhoab(x_t.copy(), grid, order).tolist()})
    doc = {"generator": "scripts/gen_deis_reference.py", "model": {"mean": MU, "std": S},
           "vp_beta": {"edm": [edm.b0, edm.bd], "vp_linear": [vp_linear.b0, vp_linear.bd]},
           "grids": grids, "x_T": x_t.tolist(), "cases": cases}
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "deis_reference.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print("wrote", len(cases), "cases to", os.path.normpath(path))


if __name__ == "__main__":
    main()
