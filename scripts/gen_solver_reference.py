#!/usr/bin/python3
"""Reference values for DPM-Solver++(2M/3M) and UniPC (bh1/bh2, orders 1-3) on the exact Gaussian
denoiser, written from the papers in lambda-space, independently of samplers/*.cpp:

  DPM-Solver++ (Lu et al. 2022, arXiv:2211.01095), Algorithm 2 for 2M; 3M as the exponential
  integrator x_t = (sigma_t/sigma_s) x_s + sigma_t * int_{lambda_s}^{lambda_t} e^lambda P(lambda) dlambda
  with P the quadratic through the last three data predictions (its Taylor terms are the paper's
  3rd-order multistep update), integrated by Gauss-Legendre quadrature rather than phi closed forms.
  UniPC (Zhao et al. 2023, arXiv:2302.04867), Algorithm 1/2 (data prediction): predictor UniP-p and
  corrector UniC-p with B(h) = h (bh1) or e^h - 1 (bh2), phi_k by quadrature of their integral form.

Data N(mu, s^2 I): D(x, sigma) = mu + s^2/(s^2 + sigma^2) (x - mu); sigma-space (alpha = 1, lambda = -log sigma).
Writes tests/data/solver_reference.json. Run: /usr/bin/python3 scripts/gen_solver_reference.py
"""
import json
import math
import os

import numpy as np

MU, S = 0.3, 0.5
GL_X, GL_W = np.polynomial.legendre.leggauss(40)


def denoise(x, sigma):
    return MU + S * S / (S * S + sigma * sigma) * (x - MU)


def integrate(f, a, b):
    """int_a^b f, Gauss-Legendre (f vectorised)."""
    t = 0.5 * (a + b) + 0.5 * (b - a) * GL_X
    return 0.5 * (b - a) * np.sum(GL_W * f(t))


def order_for(i, m, max_order, lower_order_final):
    """Warm-up (order <= steps taken + 1) and lower_order_final (official rule: fewer than 10 steps)."""
    order = min(max_order, i + 1)
    if lower_order_final and m < 10:
        order = min(order, m - i)
    return order


def dpmpp(x, sigmas, max_order, lower_order_final):
    lam = [-math.log(s) if s > 0 else math.inf for s in sigmas]
    m = len(sigmas) - 1
    hist = []  # (lambda_j, D_j)
    for i in range(m):
        x0 = denoise(x, sigmas[i])
        hist.append((lam[i], x0))
        if sigmas[i + 1] == 0:  # lambda = inf: the exponential integrator returns the data prediction
            x = x0
            continue
        order = order_for(i, m, max_order, lower_order_final)
        h = lam[i + 1] - lam[i]
        if order <= 2:
            if order == 1:
                dhat = x0
            else:  # Algorithm 2: D = (1 + 1/(2r)) x0_i - 1/(2r) x0_{i-1}
                r = (lam[i] - hist[-2][0]) / h
                dhat = (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * hist[-2][1]
            x = sigmas[i + 1] / sigmas[i] * x + (1 - math.exp(-h)) * dhat
        else:
            pts = hist[-3:]
            out = np.empty_like(x)
            for e in range(x.size):  # quadratic in lambda through the last three D, per element
                coef = np.polyfit([p[0] for p in pts], [p[1][e] for p in pts], 2)
                out[e] = sigmas[i + 1] / sigmas[i] * x[e] + sigmas[i + 1] * integrate(
                    lambda l: np.exp(l) * np.polyval(coef, l), lam[i], lam[i + 1])
            x = out
    return x


def phi(k, z):
    """phi_k(z) = int_0^1 e^{(1-d) z} d^{k-1}/(k-1)! dd (phi_1(z) = (e^z - 1)/z)."""
    return integrate(lambda d: np.exp((1 - d) * z) * d ** (k - 1) / math.factorial(k - 1), 0.0, 1.0)


def unipc(x, sigmas, max_order, variant, lower_order_final):
    lam = [-math.log(s) if s > 0 else math.inf for s in sigmas]
    m = len(sigmas) - 1
    hist = [(lam[0], denoise(x, sigmas[0]))]
    for i in range(m):
        if sigmas[i + 1] == 0:
            x = hist[-1][1]
            break
        p = min(order_for(i, m, max_order, lower_order_final), len(hist))
        h = lam[i + 1] - lam[i]
        z = -h  # data prediction integrates e^{-(lambda_t - lambda)}
        big_b = z if variant == "bh1" else math.expm1(z)
        l0, m0 = hist[-1]
        rs = [(hist[-1 - k][0] - l0) / h for k in range(1, p)]
        ds = [(hist[-1 - k][1] - m0) / rs[k - 1] for k in range(1, p)]
        # Order conditions sum_k a_k r_k^{j-1} = j! z phi_{j+1}(z) / B(h), j = 1..p.
        rhs = [math.factorial(j) * z * phi(j + 1, z) / big_b for j in range(1, p + 1)]
        base = sigmas[i + 1] / sigmas[i] * x + (1 - math.exp(-h)) * m0
        pred = base.copy()
        if p >= 2:
            a = [0.5] if p == 2 else np.linalg.solve(np.vander(rs, p - 1, increasing=True).T, rhs[:p - 1])
            pred = pred - big_b * sum(a[k] * ds[k] for k in range(p - 1))
        if i == m - 1:  # corrector off on the last step
            x = pred
            break
        m_next = denoise(pred, sigmas[i + 1])
        rc = rs + [1.0]
        c = [0.5] if p == 1 else np.linalg.solve(np.vander(rc, p, increasing=True).T, rhs)
        corr = c[p - 1] * (m_next - m0) + sum(c[k] * ds[k] for k in range(p - 1))
        x = base - big_b * corr
        hist.append((lam[i + 1], m_next))
    return x


def main():
    sig = [10.0, 4.2, 1.6, 0.55, 0.17, 0.05, 0.02]
    grids = {"zero": sig + [0.0], "positive": sig}
    x_t = np.array([1.3, -0.7, 0.25]) * sig[0]
    cases = []
    for gname, grid in grids.items():
        for lof in (True, False):
            for order, name in ((2, "dpmpp_2m"), (3, "dpmpp_3m")):
                # The quadratic through the last three D integrated exactly is the Taylor-consistent
                # 3M (d2=taylor); the official code's default halves its second difference.
                args = "lower_order_final=%s" % str(lof).lower() + (",d2=taylor" if order == 3 else "")
                cases.append({"sampler": name, "args": args, "grid": gname,
                              "out": dpmpp(x_t.copy(), grid, order, lof).tolist()})
            for variant in ("bh1", "bh2"):
                for order in (1, 2, 3):
                    cases.append({"sampler": "unipc",
                                  "args": "variant=%s,order=%d,lower_order_final=%s" % (variant, order, str(lof).lower()),
                                  "grid": gname, "out": unipc(x_t.copy(), grid, order, variant, lof).tolist()})
    doc = {"generator": "scripts/gen_solver_reference.py", "model": {"mean": MU, "std": S},
           "grids": grids, "x_T": x_t.tolist(), "cases": cases}
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "solver_reference.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print("wrote", len(cases), "cases to", os.path.normpath(path))


if __name__ == "__main__":
    main()
