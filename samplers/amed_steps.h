#pragma once
// The AMED step arithmetic shared by the `amed`/`amed_plugin` samplers and by train-amed: one
// interval σ → σ' of AMED-Solver or of AMED-Plugin on a base solver, and the teacher solvers on
// the refined grid. σ-space throughout (d = (x − D)/σ); per-sample scalars (r, a, s) are host
// vectors of size B or 1 (one value for the whole batch).
#include <torch/types.h>

#include <functional>
#include <string>
#include <vector>

#include "scoreflow/amed.h"
#include "scoreflow/model.h"
#include "scoreflow/sampler.h"

namespace scoreflow::amed {

/// amed: AMED-Solver; euler, ipndm, dpmpp_2m: AMED-Plugin on that base solver.
enum class Base { Amed, Euler, Ipndm, DpmPP2M };
Base parse_base(const std::string& name, const std::string& what);
std::string base_name(Base base);
/// Multistep students continue from their own state; single-step ones restart from the teacher's.
inline bool is_multistep(Base base) { return base == Base::Ipndm || base == Base::DpmPP2M; }

/// History carried from step to step (local to one trajectory).
struct History {
  std::vector<torch::Tensor> d;    ///< iPNDM: previous derivatives, newest last (≤ 3 kept)
  torch::Tensor x0_prev;           ///< DPM-Solver++: previous data prediction D
  std::vector<double> sigma_prev;  ///< … and the σ it was taken at ([B] or [1])
};

/// One interval's result: x' = A + c·B (c enters linearly, so training can use c with gradients),
/// plus what the next step's history needs.
struct Interval {
  torch::Tensor A, B;
  torch::Tensor d_mid, x0_mid;  ///< at (x_mid, s)
  std::vector<double> s;        ///< intermediate σ per sample ([B] or [1])
};

/// d at (x, σ): analytic (AFS, D ≈ 0: d = x/sqrt(1 + σ²)) or (x − D(x, σ))/σ.
torch::Tensor first_derivative(const Denoiser& denoise, const torch::Tensor& x, double sigma, bool analytic);

/// One AMED interval σ → σ' from x with d = d(x, σ): s = σ'^r σ^{1−r}, one model call
/// D(x_mid, a·s). `last`: the last interval of the solve (DPM-Solver++ lowers its order there).
/// Does not change `history`.
Interval interval(Base base, const Denoiser& denoise, const torch::Tensor& x, const torch::Tensor& d, double sigma,
                  double sigma_next, const std::vector<double>& r, const std::vector<double>& a, const History& history,
                  bool last);

/// Records the interval's two derivative/data evaluations (at σ and at s) in the history.
void push_history(Base base, History& history, const torch::Tensor& x, const torch::Tensor& d, double sigma,
                  const Interval& step);

/// [B, 1, …, 1] column of per-sample values (or one broadcast value) in x's dtype and device.
torch::Tensor column(const std::vector<double>& values, const torch::Tensor& x);

/// The student's solve over the first `intervals` intervals of `sigmas` (positive σ), from x at
/// sigmas[0]: per interval i, `coefficients(i, x, σ, σ', analytic)` gives (r, c, a) (analytic: the
/// AFS step, no model call for d). Returns x at sigmas[intervals]; `callback(i, σ')` after each.
using CoefficientSource =
    std::function<AmedCoefficients(int i, const torch::Tensor& x, double sigma, double sigma_next, bool analytic)>;
torch::Tensor solve(Base base, const Denoiser& denoise, torch::Tensor x, const std::vector<double>& sigmas,
                    int intervals, bool afs, const CoefficientSource& coefficients,
                    const std::function<void(int, double)>& callback = {});

/// Teacher trajectory (heun | ipndm | dpmpp_2m) on `fine` (positive σ only, no AFS): x at every
/// `stride`-th point after the first, i.e. at the student's grid points σ_1, σ_2, ….
std::vector<torch::Tensor> teacher_states(const std::string& teacher, const Denoiser& denoise, torch::Tensor x,
                                          const std::vector<double>& fine, int stride);

}  // namespace scoreflow::amed
