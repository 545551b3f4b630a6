#pragma once
/// Typed options for the samplers, TORCH_ARG style (`DpmppOptions().order(3).afs(true)`); the defaults
/// are the string registry's (`make_sampler(name, "k=v,...")` parses its text into these structs).
/// Values are checked where a sampler is built from them (scoreflow/samplers.h), with the messages
/// the string path gives. docs/design.md §4; the README's sampler table says what each option does.
#include <torch/arg.h>

#include <cmath>
#include <optional>
#include <string>

namespace scoreflow {

/// When a multistep solver lowers its order on the last steps: `Official` is the sampler's own
/// paper code's rule (DPM-Solver++: below 10 steps; UniPC: always); string `true`.
enum class LowerOrderFinal { Official, Never, Always, Below10 };
/// Imagen's dynamic thresholding of each x̂0 (string `thresholding=none|dynamic`).
enum class Thresholding { None, Dynamic };
/// DPM-Solver++(3M)'s second difference: the official half-size one (second order) or Taylor's.
enum class DpmppD2 { Official, Taylor };
enum class DdpmVariance { BetaTilde, Beta };
enum class SdeSolverType { Midpoint, Heun };
enum class UnipcVariant { Bh1, Bh2 };
enum class IpndmWeights { Deis, Exact };
enum class DeisVariant { Tab, Rhoab };
/// The Analytic-DPM family's mean: the posterior mean from the clamped x̂0, or the network's ε̂.
enum class AnalyticMean { Posterior, Eps };
/// The solver AMED-Plugin runs on (string `base=euler|ipndm|dpmpp_2m`).
enum class AmedBase { Euler, Ipndm, Dpmpp2m };

/// `euler`.
struct EulerOptions {
  TORCH_ARG(bool, afs) = false;
  TORCH_ARG(bool, denoise_to_zero) = false;
};

/// `heun` (EDM Algorithm 2 with churn).
struct HeunOptions {
  TORCH_ARG(double, s_churn) = 0.0;
  TORCH_ARG(double, s_tmin) = 0.0;
  TORCH_ARG(double, s_tmax) = INFINITY;
  TORCH_ARG(double, s_noise) = 1.0;
  TORCH_ARG(bool, afs) = false;
  TORCH_ARG(bool, denoise_to_zero) = false;
};

/// `ddim`: eta in [0, 1].
struct DdimOptions {
  TORCH_ARG(double, eta) = 0.0;
  TORCH_ARG(bool, afs) = false;
};

/// `ddpm`.
struct DdpmOptions {
  TORCH_ARG(DdpmVariance, variance) = DdpmVariance::BetaTilde;
  TORCH_ARG(bool, afs) = false;
};

/// `euler_maruyama`.
struct EulerMaruyamaOptions {
  TORCH_ARG(bool, afs) = false;
};

/// `dpm_solver_2`: intermediate point at λ + r·h, r in (0, 1].
struct DpmSolver2Options {
  TORCH_ARG(double, r) = 0.5;
  TORCH_ARG(bool, afs) = false;
  TORCH_ARG(bool, denoise_to_zero) = false;
};

/// `dpmpp_2m` (order 2) and `dpmpp_3m` (order 3); d2 is used by order 3 only.
struct DpmppOptions {
  TORCH_ARG(int, order) = 2;
  TORCH_ARG(LowerOrderFinal, lower_order_final) = LowerOrderFinal::Official;
  TORCH_ARG(DpmppD2, d2) = DpmppD2::Official;
  TORCH_ARG(Thresholding, thresholding) = Thresholding::None;
  TORCH_ARG(bool, afs) = false;
  TORCH_ARG(bool, denoise_to_zero) = false;
};

/// `dpmpp_2m_sde`: eta ≥ 0 (0 = dpmpp_2m).
struct Dpmpp2mSdeOptions {
  TORCH_ARG(double, eta) = 1.0;
  TORCH_ARG(SdeSolverType, solver_type) = SdeSolverType::Midpoint;
  TORCH_ARG(bool, afs) = false;
};

/// `unipc`: order 1..3.
struct UnipcOptions {
  TORCH_ARG(UnipcVariant, variant) = UnipcVariant::Bh2;
  TORCH_ARG(int, order) = 2;
  TORCH_ARG(LowerOrderFinal, lower_order_final) = LowerOrderFinal::Official;
  TORCH_ARG(Thresholding, thresholding) = Thresholding::None;
  TORCH_ARG(bool, afs) = false;
  TORCH_ARG(bool, denoise_to_zero) = false;
};

/// `ipndm`: max_order 1..4.
struct IpndmOptions {
  TORCH_ARG(int, max_order) = 4;
  TORCH_ARG(bool, afs) = false;
  TORCH_ARG(bool, denoise_to_zero) = false;
};

/// `ipndm_v`: max_order 1..4.
struct IpndmVOptions {
  TORCH_ARG(int, max_order) = 4;
  TORCH_ARG(IpndmWeights, weights) = IpndmWeights::Deis;
  TORCH_ARG(bool, afs) = false;
  TORCH_ARG(bool, denoise_to_zero) = false;
};

/// `deis`: order 1..3.
struct DeisOptions {
  TORCH_ARG(int, order) = 3;
  TORCH_ARG(DeisVariant, variant) = DeisVariant::Tab;
  TORCH_ARG(bool, afs) = false;
  TORCH_ARG(bool, denoise_to_zero) = false;
};

/// `analytic_ddpm`: gamma = a Γ file from `scoreflow estimate-gamma` (required).
struct AnalyticDdpmOptions {
  TORCH_ARG(std::string, gamma) = "";
  TORCH_ARG(bool, clip_x0) = true;
  TORCH_ARG(bool, clip_variance) = true;
  TORCH_ARG(bool, mean_last) = true;
  TORCH_ARG(bool, noise) = true;
  TORCH_ARG(double, sigma2_clip) = 2.0;
  TORCH_ARG(AnalyticMean, mean) = AnalyticMean::Posterior;
};

/// `analytic_ddim`: gamma required, eta in [0, 1].
struct AnalyticDdimOptions {
  TORCH_ARG(std::string, gamma) = "";
  TORCH_ARG(double, eta) = 0.0;
  TORCH_ARG(bool, clip_x0) = true;
  TORCH_ARG(bool, clip_variance) = true;
  TORCH_ARG(bool, mean_last) = true;
  TORCH_ARG(bool, noise) = true;
  TORCH_ARG(double, sigma2_clip) = 1.0;
  TORCH_ARG(AnalyticMean, mean) = AnalyticMean::Eps;
};

/// `sn_dpm` (the model's eps2 head) and `npr_dpm` (its epsc head): eta in [0, 1].
struct SnDpmOptions {
  TORCH_ARG(double, eta) = 1.0;
  TORCH_ARG(bool, clip_x0) = true;
  TORCH_ARG(bool, clip_variance) = true;
  TORCH_ARG(bool, mean_last) = true;
  TORCH_ARG(bool, noise) = true;
  TORCH_ARG(double, sigma2_clip) = 2.0;
  TORCH_ARG(AnalyticMean, mean) = AnalyticMean::Posterior;
};
using NprDpmOptions = SnDpmOptions;

/// `amed` and `amed_plugin` (base: the plugin's only). The per-interval (r, c, a) come from exactly
/// one of: predictor (a file from `scoreflow train-amed`), table (its JSON table form), or fixed
/// values (any of r, c, a set; the unset ones are 0.5, 1, 1). afs and base left unset are the file's
/// record (else false and euler); set, they must agree with it.
struct AmedOptions {
  TORCH_ARG(std::string, predictor) = "";
  TORCH_ARG(std::string, table) = "";
  TORCH_ARG(std::optional<double>, r);
  TORCH_ARG(std::optional<double>, c);
  TORCH_ARG(std::optional<double>, a);
  TORCH_ARG(std::optional<bool>, afs);
  TORCH_ARG(bool, denoise_to_zero) = false;
  TORCH_ARG(std::optional<AmedBase>, base);
};
using AmedPluginOptions = AmedOptions;

}  // namespace scoreflow
