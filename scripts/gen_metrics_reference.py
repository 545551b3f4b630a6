#!/usr/bin/python3
"""Writes tests/data/metrics_reference.json: fixed feature sets and covariances with FID, Bures W2,
numpy.cov statistics and unbiased KID computed independently with numpy/scipy (the pytorch-fid way:
scipy.linalg.sqrtm of the product S1·S2). Run with Debian's /usr/bin/python3 (numpy 1.24,
scipy 1.10):

    /usr/bin/python3 scripts/gen_metrics_reference.py tests/data/metrics_reference.json

Feature values are rounded to 6 decimals *before* any statistic is computed, so the JSON holds
exactly the inputs the references were computed from.
"""
import json
import sys

import numpy as np
from scipy import linalg

SEED = 20240605


def fid_scipy(mu1, sigma1, mu2, sigma2):
    """Fréchet distance as pytorch-fid computes it: tr sqrtm(S1 S2) of the non-symmetric product."""
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if np.iscomplexobj(covmean):
        assert np.allclose(np.diagonal(covmean).imag, 0, atol=1e-6), "complex sqrtm"
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def bures_w2_scipy(mu1, sigma1, mu2, sigma2):
    """W2² between Gaussians with the symmetric form tr (S1^½ S2 S1^½)^½, scipy sqrtm."""
    root1 = linalg.sqrtm(sigma1).real
    cross = linalg.sqrtm(root1 @ sigma2 @ root1).real
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(cross))


def mmd2_unbiased(x, y):
    """Unbiased MMD² with k(a, b) = (a·b/d + 1)^3, written out with explicit loops over pairs."""
    d = x.shape[1]

    def k(a, b):
        return (a @ b.T / d + 1.0) ** 3

    m, n = len(x), len(y)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    xx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    yy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(xx + yy - 2.0 * kxy.mean())


def rounded(a):
    return np.round(a, 6)


def features(rng):
    """Two correlated, non-Gaussian feature sets of different shape (so FID is O(1))."""
    n, d = 160, 20
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    x = rounded(rng.normal(size=(n, d)) @ mix + 0.3)
    warp = np.eye(d) + 0.4 * rng.normal(size=(d, d)) / np.sqrt(d)
    y = rounded(np.tanh(rng.normal(size=(n, d)) @ mix @ warp) * 1.5 + 0.1 * rng.standard_t(5, size=(n, d)))
    return x, y


def random_spd(rng, d, floor):
    a = rng.normal(size=(d, d))
    s = a @ a.T / d + floor * np.eye(d)
    return rounded(s)  # rounding keeps it exactly symmetric and (for these floors) PD


def main(out_path):
    rng = np.random.default_rng(SEED)
    x, y = features(rng)

    mu_x, sigma_x = x.mean(axis=0), np.cov(x, rowvar=False)
    mu_y, sigma_y = y.mean(axis=0), np.cov(y, rowvar=False)

    # KID: all samples once (no RNG to match), and explicit subsets of 40 rows.
    subsets = []
    mmds = []
    for _ in range(5):
        ix = rng.choice(len(x), size=40, replace=False)
        iy = rng.choice(len(y), size=40, replace=False)
        subsets.append({"x": ix.tolist(), "y": iy.tolist()})
        mmds.append(mmd2_unbiased(x[ix], y[iy]))

    gaussians = []
    for d, floor in [(3, 0.5), (8, 0.1), (12, 0.01)]:
        mu1, mu2 = rounded(rng.normal(size=d)), rounded(rng.normal(size=d))
        s1, s2 = random_spd(rng, d, floor), random_spd(rng, d, floor)
        gaussians.append({
            "mu1": mu1.tolist(), "sigma1": s1.tolist(), "mu2": mu2.tolist(), "sigma2": s2.tolist(),
            "w2_squared": bures_w2_scipy(mu1, s1, mu2, s2), "fid": fid_scipy(mu1, s1, mu2, s2),
        })

    ref = {
        "generator": "scripts/gen_metrics_reference.py",
        "seed": SEED,
        "numpy": np.__version__,
        "x": x.tolist(),
        "y": y.tolist(),
        "mu_x": mu_x.tolist(), "sigma_x": sigma_x.tolist(),
        "mu_y": mu_y.tolist(), "sigma_y": sigma_y.tolist(),
        "fid_xy": fid_scipy(mu_x, sigma_x, mu_y, sigma_y),
        "kid_all": mmd2_unbiased(x, y),
        "kid_subsets": subsets,
        "kid_subsets_mean": float(np.mean(mmds)),
        "kid_subsets_std": float(np.std(mmds)),
        "gaussians": gaussians,
    }
    with open(out_path, "w") as f:
        json.dump(ref, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/metrics_reference.json")
