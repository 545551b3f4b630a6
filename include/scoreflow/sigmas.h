#pragma once
/// σ grids (time discretisations): descending host vectors σ_0 > … > σ_N, with a final 0 appended
/// (samplers special-case σ_next = 0). All arithmetic in double.
#include <string>
#include <vector>

#include "scoreflow/args.h"
#include "scoreflow/final_step.h"
#include "scoreflow/schedule.h"

namespace scoreflow {

/// Karras et al. (2022) eq. 5: σ_i = (σ_max^{1/ρ} + i/(n−1)(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, n points.
std::vector<double> karras_sigmas(int n, double sigma_min, double sigma_max, double rho = 7.0);
/// Uniform in λ = −log σ (DPM-Solver's logSNR spacing), n points.
std::vector<double> logsnr_sigmas(int n, double sigma_min, double sigma_max);
/// Uniform in the schedule's time after the power ρ (1: time-uniform, 2: time-quadratic), n points.
std::vector<double> time_uniform_sigmas(int n, const NoiseSchedule& schedule, double t_min, double t_max,
                                        double rho = 1.0);
/// The time of the VP-linear schedule through a σ range: log(1 + σ²) = β_min·t + β_d·t²/2 with
/// σ(t_eps) = σ_min and σ(1) = σ_max — Song et al.'s VPSDE time for a vp_linear model (0.1, 20), and
/// the VP time the DEIS and AMED authors give EDM models (their time_uniform grid, DEIS's tAB).
struct VpTime {
  double beta_min = 0, beta_d = 0;
  /// Throws Error when the range has no such schedule (β_d ≤ 0).
  static VpTime fit(double sigma_min, double sigma_max, double t_eps = 1e-3);
  /// t(σ) for any σ ≥ 0 (the positive root, without cancellation).
  double t(double sigma) const;
  double sigma(double t) const;
};
/// Uniform in VpTime::fit(σ_min, σ_max) after the power ρ, from t = 1 to t_eps = 10⁻³, n points.
std::vector<double> vp_time_uniform_sigmas(int n, double sigma_min, double sigma_max, double rho = 1.0);
/// The KL-optimal grid from the analysis of Sabour et al. (2024), "Align Your Steps" (ComfyUI's
/// kl_optimal_scheduler): σ_i = tan((1 − i/(n−1))·atan σ_max + i/(n−1)·atan σ_min).
std::vector<double> kl_optimal_sigmas(int n, double sigma_min, double sigma_max);
/// k-diffusion's get_sigmas_polyexponential: log σ polynomial in the ramp 1 → 0 with power ρ
/// (ρ = 1: logsnr), n points.
std::vector<double> polyexponential_sigmas(int n, double sigma_min, double sigma_max, double rho = 1.0);
/// k-diffusion's get_sigmas_vp: σ(t) = sqrt(exp(β_d t²/2 + β_min t) − 1) at t uniform from 1 to ε_s.
std::vector<double> vp_sigmas(int n, double beta_d = 19.9, double beta_min = 0.1, double eps_s = 1e-3);
/// The published Align Your Steps σ (Sabour et al., ICML 2024) for "sd15", "sdxl", "svd": the 10-step
/// lists (diffusers' AysSchedules) with their last positive σ (the AYS project page: 0.029, 0.029,
/// 0.002); `steps` ≠ 10 by the project page's log-linear interpolation of the 11 values to steps + 1.
/// Returns `steps` positive values (the interpolated last one is replaced by the final 0).
std::vector<double> ays_sigmas(const std::string& model, int steps);
/// Beta(α, β) quantiles (Lee et al. 2024, "Beta Sampling is All You Need"): the fractions
/// q_k = I⁻¹_{α,β}(1 − k/(n−1)), k = 0..n−1 (diffusers' _convert_to_beta), by Boost.Math's ibeta_inv.
std::vector<double> beta_fractions(int n, double alpha, double beta);
/// ComfyUI's beta_scheduler on a discrete chain of num_train_steps: timesteps
/// rint(I⁻¹_{α,β}(1 − k/n)·(N − 1)), k = 0..n−1, descending; throws when two coincide.
std::vector<int> beta_timesteps(int n, int num_train_steps, double alpha, double beta);
/// Discrete timestep indices (diffusers / DDIM spacings) over a vp_discrete chain: "leading",
/// "trailing", "linspace", "quadratic"; n indices, descending.
std::vector<int> discrete_timesteps(const std::string& spacing, int n, int num_train_steps);

struct GridInfo {
  std::string name, summary;
};
/// The registered discretisations, for `list schedules` and error messages.
const std::vector<GridInfo>& grid_names();

/// Builds the grid for `steps` intervals by name with its args (rho, sigma_min, sigma_max, ...),
/// ending in 0. Throws Error for unknown names (listing the valid ones) or unknown args.
std::vector<double> make_sigmas(const std::string& name, int steps, const NoiseSchedule& schedule,
                                const KeyValueArgs& args);
/// An explicit list (--sigmas 80,40,...): must be strictly decreasing and positive; 0 appended if
/// missing.
std::vector<double> explicit_sigmas(const std::vector<double>& values);

/// The grid for `steps` intervals under a final-step choice: zero → the grid above (ending in 0);
/// none and denoise → steps + 1 points of the same discretisation, ending at its σ_min.
std::vector<double> make_sigmas(const std::string& name, int steps, const NoiseSchedule& schedule,
                                const KeyValueArgs& args, FinalStep final);
/// An explicit list under a final-step choice: zero appends 0 as above; none and denoise take the
/// values as given and refuse a trailing 0.
std::vector<double> explicit_sigmas(const std::vector<double>& values, FinalStep final);

}  // namespace scoreflow
