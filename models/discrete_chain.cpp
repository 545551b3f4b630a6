/// The discrete VP chain of Analytic-DPM (Bao et al., ICLR 2022, §2), its timestep subsequences, and
/// the chain of a model (docs/design.md §5).
#include "scoreflow/discrete_chain.h"

#include <cmath>

#include "scoreflow/error.h"

namespace scoreflow {

DiscreteChain::DiscreteChain(const std::vector<double>& alphas_cumprod) {
  if (alphas_cumprod.empty()) fail("DiscreteChain: alphas_cumprod is empty");
  log_alpha_bar_.reserve(alphas_cumprod.size() + 1);
  beta_bar_.reserve(alphas_cumprod.size() + 1);
  log_alpha_bar_.push_back(0.0);  // ᾱ_0 = 1: the data end
  beta_bar_.push_back(0.0);
  double previous = 1.0;
  for (size_t n = 0; n < alphas_cumprod.size(); ++n) {
    const double a = alphas_cumprod[n];
    if (!(a > 0.0 && a < 1.0)) fail("DiscreteChain: alphas_cumprod[", n, "] = ", a, " is not in (0, 1)");
    if (!(a < previous))
      fail("DiscreteChain: alphas_cumprod must decrease strictly, but alphas_cumprod[", n, "] = ", a, " follows ",
           previous);
    log_alpha_bar_.push_back(std::log(a));
    beta_bar_.push_back(1.0 - a);
    previous = a;
  }
}

DiscreteChain DiscreteChain::from_betas(const std::vector<double>& betas) {
  std::vector<double> alphas_cumprod;
  alphas_cumprod.reserve(betas.size());
  double log_alpha_bar = 0.0;
  for (size_t n = 0; n < betas.size(); ++n) {
    if (!(betas[n] > 0.0 && betas[n] < 1.0))
      fail("DiscreteChain::from_betas: betas[", n, "] = ", betas[n], " is not in (0, 1)");
    log_alpha_bar += std::log1p(-betas[n]);
    alphas_cumprod.push_back(std::exp(log_alpha_bar));
  }
  DiscreteChain chain(alphas_cumprod);
  // β̄ from the log sum keeps its relative precision where ᾱ is close to 1.
  double acc = 0.0;
  for (size_t n = 0; n < betas.size(); ++n) {
    acc += std::log1p(-betas[n]);
    chain.log_alpha_bar_[n + 1] = acc;
    chain.beta_bar_[n + 1] = -std::expm1(acc);
  }
  return chain;
}

void DiscreteChain::check_t(int64_t t, const char* what) const {
  if (t < 0 || t > num_steps()) fail("DiscreteChain: ", what, " = ", t, " is outside [0, ", num_steps(), "]");
}

double DiscreteChain::alpha_bar(int64_t t) const {
  check_t(t, "t");
  return std::exp(log_alpha_bar_[t]);
}

double DiscreteChain::beta_bar(int64_t t) const {
  check_t(t, "t");
  return beta_bar_[t];
}

double DiscreteChain::alpha(int64_t t, int64_t s) const {
  check_t(t, "t");
  check_t(s, "s");
  if (s > t) fail("DiscreteChain: alpha(t|s) needs s <= t, got s = ", s, ", t = ", t);
  return std::exp(log_alpha_bar_[t] - log_alpha_bar_[s]);
}

double DiscreteChain::beta(int64_t t, int64_t s) const {
  check_t(t, "t");
  check_t(s, "s");
  if (s > t) fail("DiscreteChain: beta(t|s) needs s <= t, got s = ", s, ", t = ", t);
  if (s == 0) return beta_bar_[t];
  return -std::expm1(log_alpha_bar_[t] - log_alpha_bar_[s]);  // short skips: expm1
}

double DiscreteChain::beta_tilde(int64_t s, int64_t t) const {
  if (!(s < t)) fail("DiscreteChain: beta_tilde(s|t) needs s < t, got s = ", s, ", t = ", t);
  return beta(t, s) * beta_bar(s) / beta_bar(t);
}

double DiscreteChain::sigma(int64_t t) const {
  check_t(t, "t");
  return std::sqrt(beta_bar_[t] / std::exp(log_alpha_bar_[t]));
}

int64_t DiscreteChain::model_index(int64_t t) const {
  if (t < 1 || t > num_steps())
    fail("DiscreteChain: timestep ", t, " has no model index (valid: 1..", num_steps(), ")");
  return t - 1;
}

namespace {

void check_nk(const char* kind, int64_t N, int64_t K) {
  if (N < 1) fail(kind, " timesteps: N must be >= 1, got ", N);
  if (K < 2 && !(K == 1 && N == 1)) fail(kind, " timesteps: K must be >= 2 (the path holds 1 and N), got ", K);
  if (K > N) fail(kind, " timesteps: K = ", K, " exceeds the number of steps N = ", N);
}

}  // namespace

std::vector<int64_t> even_timesteps(int64_t N, int64_t K) {
  check_nk("even", N, K);
  if (K == 1) return {1};
  std::vector<int64_t> steps(K);
  // As the authors' `_choice_steps_linear` (baofff/Analytic-DPM): a double index from 1.0 advanced by
  // the stride (N − 1)/(K − 1), each point rounded half to even (Python's round). The accumulated
  // index is what decides the ties: 1 + 12·41.625 = 500.5 gives 500 for N = 1000, K = 25.
  const double stride = static_cast<double>(N - 1) / static_cast<double>(K - 1);
  double index = 1.0;
  for (int64_t k = 0; k < K; ++k, index += stride) steps[k] = static_cast<int64_t>(std::nearbyint(index));
  return steps;
}

std::vector<int64_t> quadratic_timesteps(int64_t N, int64_t K) {
  check_nk("quadratic", N, K);
  if (K == 1) return {1};
  std::vector<int64_t> steps(K);
  for (int64_t k = 0; k < K; ++k) {
    const double x = static_cast<double>(k) / static_cast<double>(K - 1);
    steps[k] = 1 + static_cast<int64_t>(std::nearbyint(static_cast<double>(N - 1) * x * x));
    // Near the data end the parabola is flatter than one step: push repeats up. Convexity keeps
    // the last point at N (round(f(k)) + K−1−k ≤ N for K ≤ N).
    if (k > 0 && steps[k] <= steps[k - 1]) steps[k] = steps[k - 1] + 1;
  }
  steps[K - 1] = N;
  return steps;
}

std::vector<int64_t> explicit_timesteps(const std::vector<int64_t>& steps, int64_t N) {
  if (steps.empty()) fail("explicit timesteps: the list is empty");
  if (steps.front() != 1) fail("explicit timesteps must start at 1, got ", steps.front());
  if (steps.back() != N) fail("explicit timesteps must end at N = ", N, ", got ", steps.back());
  for (size_t k = 1; k < steps.size(); ++k)
    if (steps[k] <= steps[k - 1])
      fail("explicit timesteps must increase strictly: ", steps[k - 1], " then ", steps[k], " at position ", k);
  return steps;
}

std::vector<int64_t> timesteps_by_name(const std::string& name, int64_t N, int64_t K) {
  if (name == "even") return even_timesteps(N, K);
  if (name == "quadratic") return quadratic_timesteps(N, K);
  fail("unknown trajectory '", name, "' (valid here: even, quadratic; optimal needs a Gamma table)");
}

}  // namespace scoreflow

namespace scoreflow {

DiscreteChain chain_of(const Model& model) {
  const NoiseSchedule& s = model.metadata().schedule;
  if (s.type() != ScheduleType::VpDiscrete)
    fail("Analytic-DPM needs a discrete VP model (schedule vp_discrete); ", model.name(), " has ", s.describe());
  return DiscreteChain(s.alphas_cumprod());
}

int64_t chain_timestep(const Model& model, double sigma) {
  if (sigma == 0) return 0;
  const NoiseSchedule& s = model.metadata().schedule;
  if (s.type() != ScheduleType::VpDiscrete)
    fail("Analytic-DPM needs a discrete VP model (schedule vp_discrete); ", model.name(), " has ", s.describe());
  const double n = s.t_of_sigma(sigma);
  const double rounded = std::round(n);
  if (std::abs(n - rounded) > 1e-4 ||
      std::abs(s.discrete_sigmas()[static_cast<size_t>(rounded)] - sigma) > 1e-6 * sigma)
    fail("sigma ", sigma, " is not one of the model's discrete noise levels (fractional timestep ", n,
         "); use a discrete grid: ", Field{"trajectory"}, " even|quadratic|optimal or ", Field{"schedule"},
         " leading|trailing|linspace|quadratic");
  return static_cast<int64_t>(rounded) + 1;
}

}  // namespace scoreflow
