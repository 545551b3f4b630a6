#include "scoreflow/schedule.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "scoreflow/error.h"

namespace scoreflow {
namespace {

constexpr double kPi = 3.14159265358979323846;
// ZTSNR leaves ᾱ_{N−1} = 0, i.e. σ = ∞; keep the last step finite the way ComfyUI does.
constexpr double kTerminalAlphaBar = 4.8973451890853435e-08;

std::vector<double> betas_from_name(const std::string& name, double b0, double b1, int n) {
  if (n < 2 || n > 100000) fail("schedule num_train_steps must be in [2, 100000], got ", n);
  std::vector<double> betas(n);
  if (name == "linear") {
    for (int i = 0; i < n; ++i) betas[i] = b0 + (b1 - b0) * i / (n - 1);
  } else if (name == "scaled_linear") {
    double r0 = std::sqrt(b0), r1 = std::sqrt(b1);
    for (int i = 0; i < n; ++i) betas[i] = std::pow(r0 + (r1 - r0) * i / (n - 1), 2);
  } else if (name == "cosine") {
    auto f = [&](double t) { return std::pow(std::cos((t / n + 0.008) / 1.008 * kPi / 2), 2); };
    for (int i = 0; i < n; ++i) betas[i] = std::min(1.0 - f(i + 1) / f(i), 0.999);
  } else {
    fail("unknown schedule betas '", name, "'; valid: linear, scaled_linear, cosine, or an explicit list");
  }
  return betas;
}

}  // namespace

NoiseSchedule NoiseSchedule::vp_discrete(std::vector<double> betas, bool rescale) {
  if (betas.size() < 2) fail("schedule betas: need at least 2 values, got ", betas.size());
  NoiseSchedule s;
  s.type_ = ScheduleType::VpDiscrete;
  if (s.betas_name_.empty()) s.betas_name_ = "explicit";
  double log_ab = 0;
  for (size_t i = 0; i < betas.size(); ++i) {
    if (!(betas[i] > 0 && betas[i] < 1)) fail("schedule betas[", i, "] = ", betas[i], " is outside (0, 1)");
    log_ab += std::log1p(-betas[i]);
    s.alphas_cumprod_.push_back(std::exp(log_ab));
  }
  if (rescale) {
    // Lin et al. 2024: shift/scale sqrt(ᾱ) so the last is 0 and the first unchanged.
    double a0 = std::sqrt(s.alphas_cumprod_.front()), aT = std::sqrt(s.alphas_cumprod_.back());
    for (double& ab : s.alphas_cumprod_) ab = std::pow((std::sqrt(ab) - aT) * a0 / (a0 - aT), 2);
    s.alphas_cumprod_.back() = std::min(kTerminalAlphaBar, 0.5 * s.alphas_cumprod_[s.alphas_cumprod_.size() - 2]);
    s.rescaled_ = true;
  }
  for (double ab : s.alphas_cumprod_) {
    double sig = std::sqrt((1 - ab) / ab);
    s.log_sigmas_.push_back(std::log(sig));
    s.log_sigmas_exp_.push_back(sig);
  }
  for (size_t i = 1; i < s.log_sigmas_.size(); ++i)
    if (!(s.log_sigmas_[i] > s.log_sigmas_[i - 1])) fail("schedule betas do not give increasing noise at index ", i);
  s.t_min_ = 0;
  s.t_max_ = static_cast<double>(betas.size() - 1);
  return s;
}

NoiseSchedule NoiseSchedule::vp_discrete(const std::string& name, double b0, double b1, int n, bool rescale) {
  NoiseSchedule s = vp_discrete(betas_from_name(name, b0, b1, n), rescale);
  s.betas_name_ = name;
  s.p0_ = b0;
  s.p1_ = b1;
  return s;
}

NoiseSchedule NoiseSchedule::vp_linear(double beta_min, double beta_max, double t_eps) {
  if (!(beta_min > 0 && beta_max > beta_min))
    fail("vp_linear needs 0 < beta_min < beta_max, got ", beta_min, ", ", beta_max);
  if (!(t_eps > 0 && t_eps < 1)) fail("vp_linear t_eps must be in (0, 1), got ", t_eps);
  NoiseSchedule s;
  s.type_ = ScheduleType::VpLinear;
  s.p0_ = beta_min;
  s.p1_ = beta_max;
  s.t_min_ = t_eps;
  s.t_max_ = 1;
  return s;
}

NoiseSchedule NoiseSchedule::ve(double sigma_min, double sigma_max) {
  if (!(sigma_min > 0 && sigma_max > sigma_min))
    fail("ve needs 0 < sigma_min < sigma_max, got ", sigma_min, ", ", sigma_max);
  NoiseSchedule s;
  s.type_ = ScheduleType::Ve;
  s.p0_ = sigma_min;
  s.p1_ = sigma_max;
  return s;
}

NoiseSchedule NoiseSchedule::edm(double sigma_min, double sigma_max, double sigma_data) {
  if (!(sigma_min > 0 && sigma_max > sigma_min))
    fail("edm needs 0 < sigma_min < sigma_max, got ", sigma_min, ", ", sigma_max);
  if (!(sigma_data > 0)) fail("edm sigma_data must be > 0, got ", sigma_data);
  NoiseSchedule s;
  s.type_ = ScheduleType::Edm;
  s.p0_ = sigma_min;
  s.p1_ = sigma_max;
  s.sigma_data_ = sigma_data;
  s.t_min_ = sigma_min;
  s.t_max_ = sigma_max;
  return s;
}

NoiseSchedule NoiseSchedule::flow(double t_min, double t_max) {
  if (!(t_min > 0 && t_max > t_min && t_max < 1)) fail("flow needs 0 < t_min < t_max < 1, got ", t_min, ", ", t_max);
  NoiseSchedule s;
  s.type_ = ScheduleType::Flow;
  s.t_min_ = t_min;
  s.t_max_ = t_max;
  return s;
}

std::string NoiseSchedule::type_name() const {
  switch (type_) {
    case ScheduleType::VpDiscrete:
      return "vp_discrete";
    case ScheduleType::VpLinear:
      return "vp_linear";
    case ScheduleType::Ve:
      return "ve";
    case ScheduleType::Edm:
      return "edm";
    case ScheduleType::Flow:
      return "flow";
  }
  return "?";
}

std::string NoiseSchedule::describe() const {
  std::ostringstream os;
  os.precision(10);
  os << type_name() << "(";
  switch (type_) {
    case ScheduleType::VpDiscrete:
      os << betas_name_;
      if (betas_name_ != "explicit" && betas_name_ != "cosine") os << ", " << p0_ << ".." << p1_;
      if (betas_name_ == "explicit") os << ", alphas_cumprod[N-1]=" << alphas_cumprod_.back();
      os << ", N=" << num_train_steps() << (rescaled_ ? ", zero_terminal_snr" : "");
      break;
    case ScheduleType::VpLinear:
      os << "beta_min=" << p0_ << ", beta_max=" << p1_ << ", t_eps=" << t_min_;
      break;
    case ScheduleType::Ve:
      os << "sigma_min=" << p0_ << ", sigma_max=" << p1_;
      break;
    case ScheduleType::Edm:
      os << "sigma_min=" << p0_ << ", sigma_max=" << p1_ << ", sigma_data=" << sigma_data_;
      break;
    case ScheduleType::Flow:
      os << "t_min=" << t_min_ << ", t_max=" << t_max_;
      break;
  }
  os << ")";
  return os.str();
}

double NoiseSchedule::sigma(double t) const {
  switch (type_) {
    case ScheduleType::VpDiscrete: {
      // Linear interpolation of log σ between integer timesteps (k-diffusion's convention).
      double tc = std::clamp(t, t_min_, t_max_);
      size_t lo = static_cast<size_t>(std::floor(tc));
      if (lo + 1 >= log_sigmas_.size()) return log_sigmas_exp_.back();
      double w = tc - lo;
      return std::exp((1 - w) * log_sigmas_[lo] + w * log_sigmas_[lo + 1]);
    }
    case ScheduleType::VpLinear: {
      // log ᾱ(t) = −(β_min t + ½(β_max − β_min) t²); σ² = 1/ᾱ − 1 = expm1(−log ᾱ).
      double neg_log_ab = p0_ * t + 0.5 * (p1_ - p0_) * t * t;
      return std::sqrt(std::expm1(neg_log_ab));
    }
    case ScheduleType::Ve:
      return p0_ * std::pow(p1_ / p0_, t);
    case ScheduleType::Edm:
      return t;
    case ScheduleType::Flow:
      return t / (1 - t);
  }
  return 0;
}

double NoiseSchedule::alpha_of_sigma(double sig) const {
  switch (type_) {
    case ScheduleType::VpDiscrete:
    case ScheduleType::VpLinear:
      return 1 / std::sqrt(1 + sig * sig);
    case ScheduleType::Ve:
    case ScheduleType::Edm:
      return 1;
    case ScheduleType::Flow:
      return 1 / (1 + sig);
  }
  return 1;
}

double NoiseSchedule::alpha(double t) const {
  if (type_ == ScheduleType::Flow) return 1 - t;
  return alpha_of_sigma(sigma(t));
}

double NoiseSchedule::s(double t) const {
  if (type_ == ScheduleType::Flow) return t;
  double sig = sigma(t);
  return sig * alpha_of_sigma(sig);
}

double NoiseSchedule::lambda(double t) const { return -std::log(sigma(t)); }

double NoiseSchedule::t_of_sigma(double sig) const {
  if (!(sig > 0)) fail("t_of_sigma: sigma must be > 0, got ", sig);
  sig = std::clamp(sig, sigma_min(), sigma_max());
  switch (type_) {
    case ScheduleType::VpDiscrete: {
      double ls = std::log(sig);
      auto it = std::upper_bound(log_sigmas_.begin(), log_sigmas_.end(), ls);
      if (it == log_sigmas_.begin()) return 0;
      if (it == log_sigmas_.end()) return t_max_;
      size_t hi = static_cast<size_t>(it - log_sigmas_.begin()), lo = hi - 1;
      return lo + (ls - log_sigmas_[lo]) / (log_sigmas_[hi] - log_sigmas_[lo]);
    }
    case ScheduleType::VpLinear: {
      // Solve ½(β_max − β_min) t² + β_min t = log(1 + σ²) for t ≥ 0 (stable root form).
      double c = std::log1p(sig * sig), a = 0.5 * (p1_ - p0_), b = p0_;
      return 2 * c / (b + std::sqrt(b * b + 4 * a * c));
    }
    case ScheduleType::Ve:
      return std::log(sig / p0_) / std::log(p1_ / p0_);
    case ScheduleType::Edm:
      return sig;
    case ScheduleType::Flow:
      return sig / (1 + sig);
  }
  return 0;
}

TimeInput parse_time_input(const std::string& name) {
  if (name == "index") return TimeInput::Index;
  if (name == "continuous") return TimeInput::Continuous;
  if (name == "scaled") return TimeInput::Scaled;
  if (name == "sigma") return TimeInput::Sigma;
  if (name == "edm_c_noise") return TimeInput::EdmCNoise;
  if (name == "index_quantized") return TimeInput::IndexQuantized;
  if (name == "dpm_solver") return TimeInput::DpmSolver;
  fail("unknown time_input '", name,
       "'; valid: index, index_quantized, dpm_solver, continuous, scaled, sigma, edm_c_noise");
}

std::string time_input_name(TimeInput t) {
  switch (t) {
    case TimeInput::Index:
      return "index";
    case TimeInput::Continuous:
      return "continuous";
    case TimeInput::Scaled:
      return "scaled";
    case TimeInput::Sigma:
      return "sigma";
    case TimeInput::EdmCNoise:
      return "edm_c_noise";
    case TimeInput::IndexQuantized:
      return "index_quantized";
    case TimeInput::DpmSolver:
      return "dpm_solver";
  }
  return "?";
}

namespace {

/// k-diffusion's DiscreteSchedule.sigma_to_t(quantize=True): argmin_n |log σ − log σ_n|, the lower
/// index on a tie.
double nearest_timestep(const NoiseSchedule& schedule, double sig) {
  const std::vector<double>& s = schedule.discrete_sigmas();  // ascending in n
  const size_t hi = static_cast<size_t>(std::lower_bound(s.begin(), s.end(), sig) - s.begin());
  if (hi == 0) return 0;
  if (hi == s.size()) return static_cast<double>(s.size() - 1);
  const double ls = std::log(sig);
  return ls - std::log(s[hi - 1]) <= std::log(s[hi]) - ls ? static_cast<double>(hi - 1) : static_cast<double>(hi);
}

/// LuChengTHU/dpm-solver's NoiseScheduleVP('discrete') with model_wrapper's t_input: keypoints
/// log α_n = ½ log ᾱ_n at t_n = (n+1)/N for n < N, where N counts the steps the official code keeps
/// (numerical_clip_alpha drops the noisiest ones with λ_n < −5.1, e.g. for cosine betas);
/// t(σ) = interpolate_fn(log α(σ), ...) — piecewise linear in log α = −½ log(1 + σ²), the end
/// segments extended beyond the keypoints — and the network gets 1000·(t − 1/N).
double dpm_solver_time(const NoiseSchedule& schedule, double sig) {
  const std::vector<double>& ab = schedule.alphas_cumprod();  // descending in n
  const std::vector<double>& sigmas = schedule.discrete_sigmas();
  // λ_n = −log σ_n < −5.1 ⇔ σ_n > e^{5.1}: the kept steps are a prefix.
  const size_t n_kept =
      static_cast<size_t>(std::upper_bound(sigmas.begin(), sigmas.end(), std::exp(5.1)) - sigmas.begin());
  if (n_kept < 2)
    fail("time_input 'dpm_solver' needs at least 2 timesteps with lambda >= -5.1, the schedule has ", n_kept);
  const double log_alpha = -0.5 * std::log1p(sig * sig);
  auto key = [&](size_t n) { return 0.5 * std::log(ab[n]); };
  // The segment [n, n+1] with key(n) ≥ log α > key(n+1), clamped to the end segments.
  size_t lo = 0, hi = n_kept - 1;  // key(lo) ≥ log α is kept true where possible
  while (hi - lo > 1) {
    const size_t mid = (lo + hi) / 2;
    (key(mid) >= log_alpha ? lo : hi) = mid;
  }
  const double w = (log_alpha - key(lo)) / (key(lo + 1) - key(lo));
  return 1000.0 * (static_cast<double>(lo) + w) / static_cast<double>(n_kept);
}

}  // namespace

double network_time(const NoiseSchedule& schedule, TimeInput input, double sig) {
  switch (input) {
    case TimeInput::Index:
    case TimeInput::IndexQuantized:
    case TimeInput::DpmSolver:
      if (schedule.type() != ScheduleType::VpDiscrete)
        fail("time_input '", time_input_name(input), "' needs a vp_discrete schedule, the model has ",
             schedule.type_name());
      if (input == TimeInput::IndexQuantized) return nearest_timestep(schedule, sig);
      if (input == TimeInput::DpmSolver) return dpm_solver_time(schedule, sig);
      return schedule.t_of_sigma(sig);
    case TimeInput::Continuous:
    case TimeInput::Scaled: {
      double t = schedule.t_of_sigma(sig);
      if (schedule.type() == ScheduleType::VpDiscrete) t = (t + 1) / schedule.num_train_steps();
      return input == TimeInput::Scaled ? 1000 * t : t;
    }
    case TimeInput::Sigma:
      return sig;
    case TimeInput::EdmCNoise:
      return 0.25 * std::log(sig);
  }
  return 0;
}

}  // namespace scoreflow
