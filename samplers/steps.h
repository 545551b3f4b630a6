#pragma once
/// The step formulas of the first-order, Heun, iPNDM and DPM-Solver++(2M) solvers, each written once:
/// the samplers' loops (euler.cpp, heun.cpp, ipndm.cpp, dpmpp_multistep.cpp) and AMED's bases and
/// teachers (amed_steps.cpp) are built from them. σ-space throughout (d = (x − D)/σ). Private to
/// samplers/.
#include <torch/torch.h>

#include <deque>
#include <vector>

namespace scoreflow::steps {

/// Euler: x + (σ' − σ)·d.
inline torch::Tensor euler(const torch::Tensor& x, double sigma, double sigma_next, const torch::Tensor& d) {
  return x + (sigma_next - sigma) * d;
}
/// The same with a per-sample σ' ([B, 1, …] column or 0-dim scalar tensor).
inline torch::Tensor euler(const torch::Tensor& x, double sigma, const torch::Tensor& sigma_next,
                           const torch::Tensor& d) {
  return x + (sigma_next - sigma) * d;
}

/// Heun's corrector (Karras et al. 2022, Alg. 2): x + (σ' − σ)·(d + d')/2 with d' the slope at
/// the Euler predictor's point.
inline torch::Tensor heun(const torch::Tensor& x, double sigma, double sigma_next, const torch::Tensor& d,
                          const torch::Tensor& d_next) {
  return x + (sigma_next - sigma) * 0.5 * (d + d_next);
}

/// iPNDM's fixed Adams–Bashforth weights of order 1–4 (newest slope first): (1), (3, −1)/2,
/// (23, −16, 5)/12, (55, −59, 37, −9)/24.
const std::vector<double>& adams_bashforth_weights(int order);

/// x + h·Σ_j w_j·d_j (slopes newest first), in one pass per tensor (detail::lincomb).
torch::Tensor adams_bashforth(const torch::Tensor& x, double h, const std::vector<double>& w,
                              const std::deque<torch::Tensor>& ds);
/// The direction Σ_j w_j·d_j alone, for a step whose length is per sample.
torch::Tensor adams_bashforth(const std::vector<double>& w, const std::deque<torch::Tensor>& ds);

/// Keeps the newest `keep` slopes of an Adams–Bashforth history after pushing `d` (newest first).
void push_slope(std::deque<torch::Tensor>& ds, torch::Tensor d, size_t keep);

/// DPM-Solver++(2M) (Lu et al. 2022, Alg. 2) from σ to σ' > 0 in λ = −log σ, h = log(σ/σ'):
/// x' = (σ'/σ)·x + c0·D + c1·D_prev with D̂ = (1 + 1/2r)·D − D_prev/2r, r = h_prev/h, and
/// c0·D + c1·D_prev = −(e^{−h} − 1)·D̂; first order (c1 = 0) for r = 0.
struct DpmppStep {
  double ratio, c0, c1;
};
DpmppStep dpmpp_2m(double sigma, double sigma_next, double r);
/// r = h_prev/h of a second-order step from σ to σ' after one from σ_prev to σ.
double dpmpp_ratio(double sigma_prev, double sigma, double sigma_next);

}  // namespace scoreflow::steps
