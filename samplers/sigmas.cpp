#include "scoreflow/sigmas.h"

#include <cmath>

#include "scoreflow/error.h"

namespace scoreflow {

std::vector<double> karras_sigmas(int n, double sigma_min, double sigma_max, double rho) {
  std::vector<double> s(n);
  double a = std::pow(sigma_max, 1 / rho), b = std::pow(sigma_min, 1 / rho);
  for (int i = 0; i < n; ++i) s[i] = std::pow(a + (n == 1 ? 0.0 : double(i) / (n - 1)) * (b - a), rho);
  return s;
}

std::vector<double> logsnr_sigmas(int n, double sigma_min, double sigma_max) {
  std::vector<double> s(n);
  double a = std::log(sigma_max), b = std::log(sigma_min);
  for (int i = 0; i < n; ++i) s[i] = std::exp(a + (n == 1 ? 0.0 : double(i) / (n - 1)) * (b - a));
  return s;
}

std::vector<double> time_uniform_sigmas(int n, const NoiseSchedule& schedule, double t_min, double t_max, double rho) {
  std::vector<double> s(n);
  double a = std::pow(t_max, 1 / rho), b = std::pow(t_min, 1 / rho);
  for (int i = 0; i < n; ++i) s[i] = schedule.sigma(std::pow(a + (n == 1 ? 0.0 : double(i) / (n - 1)) * (b - a), rho));
  return s;
}

VpTime VpTime::fit(double sigma_min, double sigma_max, double t_eps) {
  const double l_eps = std::log1p(sigma_min * sigma_min), l_one = std::log1p(sigma_max * sigma_max);
  VpTime v;
  v.beta_d = 2 * (l_eps / t_eps - l_one) / (t_eps - 1);
  v.beta_min = l_one - v.beta_d / 2;
  if (!(sigma_min > 0 && sigma_max > sigma_min) || !(v.beta_d > 0))
    fail("no VP-linear time through the sigma range [", sigma_min, ", ", sigma_max, "] (beta_d = ", v.beta_d, ")");
  return v;
}

double VpTime::t(double sigma) const {
  const double l = std::log1p(sigma * sigma), root = std::sqrt(beta_min * beta_min + 2 * beta_d * l);
  return beta_min > 0 ? 2 * l / (root + beta_min) : (root - beta_min) / beta_d;
}

double VpTime::sigma(double t) const { return std::sqrt(std::expm1(beta_min * t + 0.5 * beta_d * t * t)); }

std::vector<double> vp_time_uniform_sigmas(int n, double sigma_min, double sigma_max, double rho) {
  constexpr double t_eps = 1e-3;
  const VpTime vp = VpTime::fit(sigma_min, sigma_max, t_eps);
  std::vector<double> s(n);
  const double b = std::pow(t_eps, 1 / rho);
  for (int i = 0; i < n; ++i) s[i] = vp.sigma(std::pow(1 + (n == 1 ? 0.0 : double(i) / (n - 1)) * (b - 1), rho));
  return s;
}

std::vector<int> discrete_timesteps(const std::string& spacing, int n, int num_train_steps) {
  const int nt = num_train_steps;
  if (n > nt) fail(n, " steps is more than the model's ", nt, " training timesteps");
  std::vector<int> t(n);
  for (int i = 0; i < n; ++i) {
    int j = n - 1 - i;  // descending
    if (spacing == "linspace") t[i] = static_cast<int>(std::lround(double(j) * (nt - 1) / std::max(n - 1, 1)));
    else if (spacing == "leading") t[i] = j * (nt / n);
    else if (spacing == "trailing") t[i] = static_cast<int>(std::lround(nt - double(i) * nt / n)) - 1;
    else if (spacing == "quadratic") t[i] = static_cast<int>(std::pow(double(j) / std::max(n - 1, 1) * std::sqrt(0.8 * nt), 2));
    else fail("unknown discrete spacing '", spacing, "'; valid: leading, trailing, linspace, quadratic");
  }
  for (int i = 1; i < n; ++i)
    if (t[i] >= t[i - 1]) fail(spacing, " spacing with ", n, " steps repeats timestep ", t[i], "; use fewer steps");
  return t;
}

const std::vector<GridInfo>& grid_names() {
  static const std::vector<GridInfo> names = {
      {"karras", "Karras et al. (2022) polynomial in sigma^(1/rho); args rho=7, sigma_min, sigma_max"},
      {"polynomial", "same as karras with rho=1 by default (sigma-uniform); args rho, sigma_min, sigma_max"},
      {"logsnr", "uniform in log sigma (DPM-Solver logSNR); args sigma_min, sigma_max"},
      {"time_uniform", "uniform in the schedule's own time after power rho (rho=2: time-quadratic); args rho, t_min, t_max"},
      {"vp_time_uniform",
       "uniform in the VP-linear time fitted to the sigma range after power rho (the AMED/DEIS authors' "
       "time_uniform for EDM models); args rho=1, sigma_min, sigma_max"},
      {"leading", "diffusers 'leading' discrete timesteps (vp_discrete models)"},
      {"trailing", "diffusers 'trailing' discrete timesteps (vp_discrete models)"},
      {"linspace", "diffusers 'linspace' discrete timesteps (vp_discrete models)"},
      {"quadratic", "DDIM quadratic discrete timesteps (vp_discrete models)"},
  };
  return names;
}

std::vector<double> make_sigmas(const std::string& name, int steps, const NoiseSchedule& schedule, const KeyValueArgs& args) {
  if (steps < 1) fail("steps must be >= 1, got ", steps);
  if (steps > 100000) fail("steps ", steps, " is absurdly large (limit 100000)");
  std::vector<double> s;
  auto smin = [&] { return args.get_double("sigma_min", schedule.sigma_min()); };
  auto smax = [&] { return args.get_double("sigma_max", schedule.sigma_max()); };
  if (name == "karras" || name == "polynomial") {
    double rho = args.get_double("rho", name == "karras" ? 7.0 : 1.0);
    double lo = smin(), hi = smax();
    if (!(rho > 0)) fail("grid ", name, ": rho must be > 0, got ", rho);
    if (!(lo > 0 && hi > lo)) fail("grid ", name, ": need 0 < sigma_min < sigma_max, got ", lo, ", ", hi);
    s = karras_sigmas(steps, lo, hi, rho);
  } else if (name == "logsnr") {
    double lo = smin(), hi = smax();
    if (!(lo > 0 && hi > lo)) fail("grid logsnr: need 0 < sigma_min < sigma_max, got ", lo, ", ", hi);
    s = logsnr_sigmas(steps, lo, hi);
  } else if (name == "time_uniform") {
    double rho = args.get_double("rho", 1.0);
    double t0 = args.get_double("t_min", schedule.t_min()), t1 = args.get_double("t_max", schedule.t_max());
    if (!(t1 > t0)) fail("grid time_uniform: need t_min < t_max, got ", t0, ", ", t1);
    s = time_uniform_sigmas(steps, schedule, t0, t1, rho);
  } else if (name == "vp_time_uniform") {
    double rho = args.get_double("rho", 1.0), lo = smin(), hi = smax();
    if (!(rho > 0)) fail("grid vp_time_uniform: rho must be > 0, got ", rho);
    if (!(lo > 0 && hi > lo)) fail("grid vp_time_uniform: need 0 < sigma_min < sigma_max, got ", lo, ", ", hi);
    s = vp_time_uniform_sigmas(steps, lo, hi, rho);
  } else if (name == "leading" || name == "trailing" || name == "linspace" || name == "quadratic") {
    if (schedule.type() != ScheduleType::VpDiscrete)
      fail("grid ", name, " needs a vp_discrete model schedule; this model has ", schedule.type_name());
    for (int t : discrete_timesteps(name, steps, schedule.num_train_steps())) s.push_back(schedule.discrete_sigmas()[t]);
  } else {
    std::vector<std::string> names;
    for (const GridInfo& g : grid_names()) names.push_back(g.name);
    fail("unknown schedule '", name, "'; valid: ", join(names));
  }
  args.finish("schedule " + name);
  s.push_back(0.0);
  return s;
}

std::vector<double> explicit_sigmas(const std::vector<double>& values) {
  if (values.empty()) fail(Field{"sigmas"}, ": empty list");
  std::vector<double> s = values;
  if (s.back() != 0.0) s.push_back(0.0);
  if (s.size() < 2) fail(Field{"sigmas"}, ": need at least one positive sigma");
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    if (!(s[i] > 0) || !std::isfinite(s[i])) fail(Field{"sigmas"}, ": value ", s[i], " at position ", i, " must be positive and finite");
    if (!(s[i + 1] < s[i])) fail(Field{"sigmas"}, ": not strictly decreasing at position ", i + 1, " (", s[i], " then ", s[i + 1], ")");
  }
  return s;
}

}  // namespace scoreflow
