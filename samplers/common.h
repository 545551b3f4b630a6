#pragma once
/// Options shared by the samplers, kept in one place: `afs` (analytical first step) and
/// `denoise_to_zero` (docs/design.md §4). Private to samplers/.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "scoreflow/args.h"
#include "scoreflow/error.h"
#include "scoreflow/model.h"
#include "scoreflow/sampler_options.h"

namespace scoreflow::detail {

/// The denoiser as a sampler calls it. With AFS (Zhou et al. 2024, AMED-Solver) the first call is
/// not made: D ≈ 0 for large σ gives d_0 = x/sqrt(1 + σ_0²), i.e. D = x − σ·d_0, saving one NFE.
class ModelCalls {
 public:
  ModelCalls(const Denoiser& denoise, bool afs) : denoise_(denoise), afs_(afs) {}
  /// D(x, σ), [B, ...shape] σ-space.
  torch::Tensor operator()(const torch::Tensor& x, double sigma) {
    const bool analytic = afs_ && first_;
    first_ = false;
    if (analytic) return x - sigma * x / std::sqrt(1 + sigma * sigma);
    return denoise_(x, sigma);
  }

 private:
  const Denoiser& denoise_;
  bool afs_;
  bool first_ = true;
};

/// Reads `afs` (default false).
inline bool read_afs(const KeyValueArgs& args) { return args.get_bool("afs", false); }

/// Reads `denoise_to_zero` (default false).
inline bool read_denoise_to_zero(const KeyValueArgs& args) { return args.get_bool("denoise_to_zero", false); }

/// When a multistep solver lowers its order on the last steps (step i of `total` uses at most
/// total − i): the official DPM-Solver code only for fewer than 10 steps, the official UniPC code
/// and diff-sampler always.
enum class LowerOrderFinal { Never, Below10, Always };

/// Reads `lower_order_final`: true (the sampler's official rule, `official`), false, always or
/// below10. `sampler` names the sampler in the error.
inline LowerOrderFinal read_lower_order_final(const KeyValueArgs& args, const std::string& sampler,
                                              LowerOrderFinal official) {
  const std::string v = args.get_string("lower_order_final", "true");
  if (v == "true" || v == "1" || v == "yes" || v == "on") return official;
  if (v == "false" || v == "0" || v == "no" || v == "off") return LowerOrderFinal::Never;
  if (v == "always") return LowerOrderFinal::Always;
  if (v == "below10") return LowerOrderFinal::Below10;
  fail(sampler, ": lower_order_final must be true, false, always or below10, got '", v, "'");
}

/// Reads `lower_order_final` into the typed option (true → Official). `sampler` names the sampler in
/// the error.
inline scoreflow::LowerOrderFinal read_lower_order_final_option(const KeyValueArgs& args, const std::string& sampler) {
  const std::string v = args.get_string("lower_order_final", "true");
  if (v == "true" || v == "1" || v == "yes" || v == "on") return scoreflow::LowerOrderFinal::Official;
  if (v == "false" || v == "0" || v == "no" || v == "off") return scoreflow::LowerOrderFinal::Never;
  if (v == "always") return scoreflow::LowerOrderFinal::Always;
  if (v == "below10") return scoreflow::LowerOrderFinal::Below10;
  fail(sampler, ": lower_order_final must be true, false, always or below10, got '", v, "'");
}

/// The rule a typed `lower_order_final` names, `official` for Official.
inline LowerOrderFinal lower_order_rule(scoreflow::LowerOrderFinal option, LowerOrderFinal official) {
  switch (option) {
    case scoreflow::LowerOrderFinal::Never:
      return LowerOrderFinal::Never;
    case scoreflow::LowerOrderFinal::Always:
      return LowerOrderFinal::Always;
    case scoreflow::LowerOrderFinal::Below10:
      return LowerOrderFinal::Below10;
    default:
      return official;
  }
}

/// The order of step i of `total` under the rule, given the order the history allows.
inline int final_order(LowerOrderFinal rule, int order, int i, int total) {
  if (rule == LowerOrderFinal::Always || (rule == LowerOrderFinal::Below10 && total < 10))
    return std::min(order, total - i);
  return order;
}

/// Reads `thresholding`: none (default) or dynamic. `sampler` names the sampler in the error.
inline bool read_thresholding(const KeyValueArgs& args, const std::string& sampler) {
  const std::string v = args.get_string("thresholding", "none");
  if (v != "none" && v != "dynamic") fail(sampler, ": unknown thresholding '", v, "'; valid: none, dynamic");
  return v == "dynamic";
}

/// Reads `thresholding` into the typed option.
inline Thresholding read_thresholding_option(const KeyValueArgs& args, const std::string& sampler) {
  return read_thresholding(args, sampler) ? Thresholding::Dynamic : Thresholding::None;
}

/// Imagen's dynamic thresholding of a data prediction, as the DPM-Solver and UniPC codes apply it
/// (`correcting_x0_fn="dynamic_thresholding"`, always on in diff-sampler's DPM-Solver++ and UniPC):
/// per sample s = max(0.995-quantile of |x̂0|, 1), x̂0 ← clamp(x̂0, −s, s)/s.
inline torch::Tensor dynamic_threshold(const torch::Tensor& x0) {
  torch::Tensor flat = x0.abs().reshape({x0.size(0), -1});
  torch::Tensor s = at::quantile(flat, 0.995, 1, /*keepdim=*/true).clamp_min(1.0);
  std::vector<int64_t> shape(x0.dim(), 1);
  shape[0] = x0.size(0);
  s = s.reshape(shape);
  return at::minimum(at::maximum(x0, -s), s) / s;
}

/// The σ points a sampler integrates between. Without denoise_to_zero: the grid itself. With it:
/// the grid without a trailing 0; the sampler then finishes with x ← D(x, σ_last). On a grid ending
/// in 0 (every CLI grid) this turns the last interval into one denoiser call — the step into σ = 0 of
/// Euler, Heun and the DPM-Solver family already is that call, so only samplers whose step into 0
/// extrapolates (iPNDM) change, and no NFE count changes. On a grid ending at σ_N > 0 it adds the call
/// at σ_N: the same computation as that grid with 0 appended.
inline std::vector<double> solve_grid(const std::vector<double>& sigmas, bool denoise_to_zero) {
  if (denoise_to_zero && sigmas.size() > 1 && sigmas.back() == 0) return {sigmas.begin(), sigmas.end() - 1};
  return sigmas;
}

}  // namespace scoreflow::detail
