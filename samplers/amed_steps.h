#pragma once
// The AMED step arithmetic shared by the `amed`/`amed_plugin` samplers and by train-amed: one
// interval σ → σ' of AMED-Solver or of AMED-Plugin on a base solver, and the teacher solvers on
// the refined grid. σ-space throughout (d = (x − D)/σ); per-sample scalars (r, a, s) are host
// vectors of size B or 1 (one value for the whole batch).
#include <torch/types.h>

#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "scoreflow/amed.h"
#include "scoreflow/model.h"
#include "scoreflow/sampler.h"

namespace scoreflow::amed {

/// History carried from step to step (local to one trajectory).
struct History {
  std::deque<torch::Tensor> d;     ///< iPNDM: previous derivatives, newest first (≤ 3 kept)
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

/// What AMED runs on: AMED-Solver (`amed`) or a base solver of AMED-Plugin (`euler`, `ipndm`,
/// `dpmpp_2m`), each the two sub-steps σ → s → σ' of an interval built from samplers/steps.h.
class Base {
 public:
  virtual ~Base() = default;
  virtual std::string name() const = 0;
  /// Multistep students continue from their own state; single-step ones restart from the teacher's.
  virtual bool multistep() const { return false; }
  /// The order of the sampler built on this base; `midpoint`: a fixed r = 1/2 (no predictor or
  /// table).
  virtual int order(bool midpoint) const {
    (void)midpoint;
    return 2;
  }

  /// One AMED interval σ → σ' from x with d = d(x, σ): s = σ'^r σ^{1−r}, one model call
  /// D(x_mid, a·s). `last`: the last interval of the solve (DPM-Solver++ lowers its order there).
  /// Does not change `history`.
  Interval interval(const Denoiser& denoise, const torch::Tensor& x, const torch::Tensor& d, double sigma,
                    double sigma_next, const std::vector<double>& r, const std::vector<double>& a,
                    const History& history, bool last) const;
  /// Records the interval's two derivative/data evaluations (at σ and at s) in the history.
  virtual void push_history(History& history, const torch::Tensor& x, const torch::Tensor& d, double sigma,
                            const Interval& step) const;

 protected:
  /// The first sub-step σ → s (per-sample s, also as a column).
  virtual torch::Tensor to_mid(const torch::Tensor& x, const torch::Tensor& d, double sigma,
                               const std::vector<double>& s, const torch::Tensor& s_col,
                               const History& history) const = 0;
  /// The second sub-step s → σ' as step.A + c·step.B (step.s, d_mid and x0_mid set).
  virtual void to_next(Interval& step, const torch::Tensor& x, const torch::Tensor& d, double sigma, double sigma_next,
                       const torch::Tensor& x_mid, const torch::Tensor& s_col, const History& history,
                       bool last) const = 0;
};

/// The base named `name` (amed, euler, ipndm, dpmpp_2m); `what` names it in the error.
const Base& find_base(const std::string& name, const std::string& what);

/// [B, 1, …, 1] column of per-sample values (or one broadcast value) in x's dtype and device.
torch::Tensor column(const std::vector<double>& values, const torch::Tensor& x);

/// The student's solve over the first `intervals` intervals of `sigmas` (positive σ), from x at
/// sigmas[0]: per interval i, `coefficients(i, x, σ, σ', analytic)` gives (r, c, a) (analytic: the
/// AFS step, no model call for d). Returns x at sigmas[intervals]; `callback(i, σ')` after each.
using CoefficientSource =
    std::function<AmedCoefficients(int i, const torch::Tensor& x, double sigma, double sigma_next, bool analytic)>;
torch::Tensor solve(const Base& base, const Denoiser& denoise, torch::Tensor x, const std::vector<double>& sigmas,
                    int intervals, bool afs, const CoefficientSource& coefficients,
                    const std::function<void(int, double)>& callback = {});

/// Teacher trajectory (heun | ipndm | dpmpp_2m) on `fine` (positive σ only, no AFS): x at every
/// `stride`-th point after the first, i.e. at the student's grid points σ_1, σ_2, …. The same states
/// as the samplers heun, ipndm (max_order=4) and dpmpp_2m (lower_order_final=always) on `fine`.
std::vector<torch::Tensor> teacher_states(const std::string& teacher, const Denoiser& denoise, torch::Tensor x,
                                          const std::vector<double>& fine, int stride);

}  // namespace scoreflow::amed
