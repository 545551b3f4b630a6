#pragma once
/// σ grids (time discretisations): descending host vectors σ_0 > … > σ_N, with a final 0 appended
/// (samplers special-case σ_next = 0). All arithmetic in double.
#include <string>
#include <vector>

#include "scoreflow/args.h"
#include "scoreflow/schedule.h"

namespace scoreflow {

/// Karras et al. (2022) eq. 5: σ_i = (σ_max^{1/ρ} + i/(n−1)(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, n points.
std::vector<double> karras_sigmas(int n, double sigma_min, double sigma_max, double rho = 7.0);
/// Uniform in λ = −log σ (DPM-Solver's logSNR spacing), n points.
std::vector<double> logsnr_sigmas(int n, double sigma_min, double sigma_max);
/// Uniform in the schedule's time after the power ρ (1: time-uniform, 2: time-quadratic), n points.
std::vector<double> time_uniform_sigmas(int n, const NoiseSchedule& schedule, double t_min, double t_max, double rho = 1.0);
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

}  // namespace scoreflow
