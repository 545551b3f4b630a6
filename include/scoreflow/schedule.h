#pragma once
/// Noise schedules x_t = α(t)·x0 + s(t)·ε, viewed in σ-space (σ = s/α, docs/design.md §2). Plain data:
/// every quantity is a host double; nothing here touches a device.
#include <string>
#include <vector>

namespace scoreflow {

enum class ScheduleType { VpDiscrete, VpLinear, Ve, Edm, Flow };

class NoiseSchedule {
 public:
  /// Discrete VP chain from explicit betas (index n = 0..N-1 is the network's timestep).
  static NoiseSchedule vp_discrete(std::vector<double> betas, bool rescale_zero_terminal_snr = false);
  /// Named betas: "linear", "scaled_linear", "cosine" (Nichol & Dhariwal, s = 0.008).
  static NoiseSchedule vp_discrete(const std::string& betas, double beta_start, double beta_end, int num_train_steps,
                                   bool rescale_zero_terminal_snr = false);
  /// Continuous VP with linear β(t) = β_min + t(β_max − β_min), t in [t_eps, 1] (Song et al. 2021).
  static NoiseSchedule vp_linear(double beta_min = 0.1, double beta_max = 20.0, double t_eps = 1e-3);
  /// Variance exploding: σ(t) = σ_min (σ_max/σ_min)^t, α = 1, t in [0, 1].
  static NoiseSchedule ve(double sigma_min = 0.01, double sigma_max = 50.0);
  /// EDM (Karras et al. 2022): t = σ, α = 1.
  static NoiseSchedule edm(double sigma_min = 0.002, double sigma_max = 80.0, double sigma_data = 0.5);
  /// Rectified flow: x_t = (1 − t) x0 + t ε, t in [t_min, t_max].
  static NoiseSchedule flow(double t_min = 1e-3, double t_max = 1.0 - 1e-3);

  ScheduleType type() const { return type_; }
  /// "vp_discrete", "vp_linear", "ve", "edm", "flow".
  std::string type_name() const;
  /// One line with every parameter, e.g. "vp_discrete(linear, 1e-4..0.02, N=1000)". Used to
  /// refuse files made for another schedule.
  std::string describe() const;

  /// The network-native time range [t_min, t_max] (index range for vp_discrete).
  double t_min() const { return t_min_; }
  double t_max() const { return t_max_; }
  double alpha(double t) const;   ///< signal scale α(t)
  double s(double t) const;       ///< noise scale s(t)
  double sigma(double t) const;   ///< σ(t) = s/α
  double lambda(double t) const;  ///< λ(t) = −log σ(t) (half log-SNR)
  /// Inverse of sigma(t): closed form where it exists, monotone log-σ interpolation for
  /// vp_discrete; σ outside [σ_min, σ_max] is clamped to the range.
  double t_of_sigma(double sigma) const;
  /// α as a function of σ: VP 1/sqrt(1+σ²); VE/EDM 1; flow 1/(1+σ).
  double alpha_of_sigma(double sigma) const;
  double sigma_min() const { return sigma(t_min_); }
  double sigma_max() const { return sigma(t_max_); }

  /// vp_discrete only: N and ᾱ_n for n = 0..N−1 (0 for continuous schedules / empty vector).
  int num_train_steps() const { return static_cast<int>(alphas_cumprod_.size()); }
  const std::vector<double>& alphas_cumprod() const { return alphas_cumprod_; }
  /// σ_n = sqrt((1 − ᾱ_n)/ᾱ_n) of the discrete chain.
  const std::vector<double>& discrete_sigmas() const { return log_sigmas_exp_; }
  double sigma_data() const { return sigma_data_; }

 private:
  NoiseSchedule() = default;
  ScheduleType type_ = ScheduleType::Edm;
  std::string betas_name_;
  double p0_ = 0, p1_ = 0, sigma_data_ = 0.5;  // (β_min, β_max) | (σ_min, σ_max)
  double t_min_ = 0, t_max_ = 1;
  bool rescaled_ = false;
  std::vector<double> alphas_cumprod_, log_sigmas_, log_sigmas_exp_;
};

/// What the network takes as its time input (docs/design.md §3; docs/samplers.md says which peer uses which).
enum class TimeInput { Index, Continuous, Scaled, Sigma, EdmCNoise, IndexQuantized, DpmSolver };
TimeInput parse_time_input(const std::string& name);
std::string time_input_name(TimeInput t);
/// The value fed to the network at noise level σ: index → fractional discrete index (log σ
/// interpolated between integer timesteps, k-diffusion's quantize=False); index_quantized → the
/// nearest integer timestep in log σ (k-diffusion's quantize=True, diffusers' integer timesteps);
/// dpm_solver → LuChengTHU/dpm-solver's discrete convention, 1000·(t − 1/N) with t interpolated
/// linearly in log α over t_n = (n+1)/N; continuous → t in [0, 1] ((n+1)/N for a discrete chain);
/// scaled → 1000·continuous; sigma → σ; edm_c_noise → ln(σ)/4. The three discrete ones need vp_discrete.
double network_time(const NoiseSchedule& schedule, TimeInput input, double sigma);

}  // namespace scoreflow
