#include "scoreflow/sigmas.h"

#include <boost/math/special_functions/beta.hpp>
#include <cmath>
#include <map>

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

std::vector<double> kl_optimal_sigmas(int n, double sigma_min, double sigma_max) {
  std::vector<double> s(n);
  const double a = std::atan(sigma_max), b = std::atan(sigma_min);
  for (int i = 0; i < n; ++i) {
    const double u = n == 1 ? 0.0 : double(i) / (n - 1);
    s[i] = std::tan(u * b + (1 - u) * a);
  }
  return s;
}

std::vector<double> polyexponential_sigmas(int n, double sigma_min, double sigma_max, double rho) {
  std::vector<double> s(n);
  const double lo = std::log(sigma_min), hi = std::log(sigma_max);
  for (int i = 0; i < n; ++i) {
    const double ramp = n == 1 ? 1.0 : double(n - 1 - i) / (n - 1);  // 1 → 0
    s[i] = std::exp(std::pow(ramp, rho) * (hi - lo) + lo);
  }
  return s;
}

std::vector<double> vp_sigmas(int n, double beta_d, double beta_min, double eps_s) {
  std::vector<double> s(n);
  for (int i = 0; i < n; ++i) {
    const double t = n == 1 ? 1.0 : 1 + double(i) / (n - 1) * (eps_s - 1);
    s[i] = std::sqrt(std::expm1(0.5 * beta_d * t * t + beta_min * t));  // expm1: small t near eps_s
  }
  return s;
}

namespace {
// Align Your Steps (Sabour et al. 2024): the published 10-step σ (diffusers' AysSchedules, the AYS
// project page) and their last positive σ (the project page's list; diffusers replaces it with 0).
const std::map<std::string, std::vector<double>>& ays_tables() {
  static const std::map<std::string, std::vector<double>> tables = {
      {"sd15", {14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029}},
      {"sdxl", {14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029}},
      {"svd", {700.00, 54.5, 15.886, 7.977, 4.248, 1.789, 0.981, 0.403, 0.173, 0.034, 0.002}},
  };
  return tables;
}
}  // namespace

std::vector<double> ays_sigmas(const std::string& model, int steps) {
  const auto& tables = ays_tables();
  auto it = tables.find(model);
  if (it == tables.end()) fail("grid ays: unknown model '", model, "'; valid: sd15, sdxl, svd (e.g. ays:sdxl)");
  const std::vector<double>& table = it->second;
  const int last = static_cast<int>(table.size()) - 1;  // 10 intervals
  if (steps == last) return std::vector<double>(table.begin(), table.end() - 1);
  // Log-linear interpolation (the AYS project page's loglinear_interp): log σ piecewise linear in
  // the list position, read at steps + 1 equally spaced positions; the last one becomes the final 0.
  std::vector<double> s(steps);
  for (int k = 0; k < steps; ++k) {
    const double u = double(k) * last / steps;
    const int j = std::min(static_cast<int>(std::floor(u)), last - 1);
    const double w = u - j;
    s[k] = std::exp((1 - w) * std::log(table[j]) + w * std::log(table[j + 1]));
  }
  return s;
}

std::vector<double> beta_fractions(int n, double alpha, double beta) {
  if (!(alpha > 0 && std::isfinite(alpha)) || !(beta > 0 && std::isfinite(beta)))
    fail("grid beta: alpha and beta must be positive and finite, got alpha = ", alpha, ", beta = ", beta);
  std::vector<double> q(n);
  for (int k = 0; k < n; ++k) {
    const double p = n == 1 ? 1.0 : 1 - double(k) / (n - 1);
    q[k] = p >= 1 ? 1.0 : p <= 0 ? 0.0 : boost::math::ibeta_inv(alpha, beta, p);
  }
  return q;
}

std::vector<int> beta_timesteps(int n, int num_train_steps, double alpha, double beta) {
  if (!(alpha > 0 && std::isfinite(alpha)) || !(beta > 0 && std::isfinite(beta)))
    fail("grid beta: alpha and beta must be positive and finite, got alpha = ", alpha, ", beta = ", beta);
  std::vector<int> t(n);
  for (int k = 0; k < n; ++k) {
    const double p = 1 - double(k) / n;  // ComfyUI: 1 − linspace(0, 1, n, endpoint=False)
    const double q = p >= 1 ? 1.0 : boost::math::ibeta_inv(alpha, beta, p);
    t[k] = static_cast<int>(std::nearbyint(q * (num_train_steps - 1)));  // numpy.rint: half to even
  }
  for (int k = 1; k < n; ++k)
    if (t[k] >= t[k - 1])
      fail("grid beta with ", n, " steps repeats timestep ", t[k], " of the ", num_train_steps,
           "-step chain; use fewer steps or alpha/beta closer to 1");
  return t;
}

std::vector<int> discrete_timesteps(const std::string& spacing, int n, int num_train_steps) {
  const int nt = num_train_steps;
  if (n > nt) fail(n, " steps is more than the model's ", nt, " training timesteps");
  std::vector<int> t(n);
  for (int i = 0; i < n; ++i) {
    int j = n - 1 - i;  // descending
    if (spacing == "linspace")
      t[i] = static_cast<int>(std::lround(double(j) * (nt - 1) / std::max(n - 1, 1)));
    else if (spacing == "leading")
      t[i] = j * (nt / n);
    else if (spacing == "trailing")
      t[i] = static_cast<int>(std::lround(nt - double(i) * nt / n)) - 1;
    else if (spacing == "quadratic")
      t[i] = static_cast<int>(std::pow(double(j) / std::max(n - 1, 1) * std::sqrt(0.8 * nt), 2));
    else
      fail("unknown discrete spacing '", spacing, "'; valid: leading, trailing, linspace, quadratic");
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
      {"time_uniform",
       "uniform in the schedule's own time after power rho (rho=2: time-quadratic); args rho, t_min, t_max"},
      {"vp_time_uniform",
       "uniform in the VP-linear time fitted to the sigma range after power rho (the AMED/DEIS authors' "
       "time_uniform for EDM models); args rho=1, sigma_min, sigma_max"},
      {"leading", "diffusers 'leading' discrete timesteps (vp_discrete models)"},
      {"trailing", "diffusers 'trailing' discrete timesteps (vp_discrete models)"},
      {"linspace", "diffusers 'linspace' discrete timesteps (vp_discrete models)"},
      {"quadratic", "DDIM quadratic discrete timesteps (vp_discrete models)"},
      {"ays",
       "Align Your Steps (Sabour et al. 2024) published sigmas, ays:sd15|sdxl|svd (or arg model=); other "
       "step counts by the paper's log-linear interpolation"},
      {"kl_optimal", "tan of a linear ramp in atan(sigma) (AYS paper; ComfyUI kl_optimal); args sigma_min, sigma_max"},
      {"beta",
       "Beta(alpha, beta) quantiles of the time (ComfyUI beta on vp_discrete timesteps, diffusers beta "
       "sigmas on the time range otherwise); args alpha=0.6, beta=0.6"},
      {"polyexponential", "k-diffusion: log sigma polynomial in a 1->0 ramp; args rho=1, sigma_min, sigma_max"},
      {"vp",
       "k-diffusion: continuous VP, sigma(t) with t uniform 1 -> eps_s; args beta_d=19.9, beta_min=0.1, eps_s=1e-3"},
  };
  return names;
}

std::vector<double> make_sigmas(const std::string& name, int steps, const NoiseSchedule& schedule,
                                const KeyValueArgs& args) {
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
    for (int t : discrete_timesteps(name, steps, schedule.num_train_steps()))
      s.push_back(schedule.discrete_sigmas()[t]);
  } else if (name == "kl_optimal") {
    double lo = smin(), hi = smax();
    if (!(lo > 0 && hi > lo)) fail("grid kl_optimal: need 0 < sigma_min < sigma_max, got ", lo, ", ", hi);
    s = kl_optimal_sigmas(steps, lo, hi);
  } else if (name == "polyexponential") {
    double rho = args.get_double("rho", 1.0), lo = smin(), hi = smax();
    if (!(rho > 0)) fail("grid polyexponential: rho must be > 0, got ", rho);
    if (!(lo > 0 && hi > lo)) fail("grid polyexponential: need 0 < sigma_min < sigma_max, got ", lo, ", ", hi);
    s = polyexponential_sigmas(steps, lo, hi, rho);
  } else if (name == "vp") {
    double bd = args.get_double("beta_d", 19.9), b0 = args.get_double("beta_min", 0.1),
           eps = args.get_double("eps_s", 1e-3);
    if (!(bd > 0) || !(b0 >= 0) || !(eps > 0 && eps < 1))
      fail("grid vp: need beta_d > 0, beta_min >= 0, 0 < eps_s < 1, got ", bd, ", ", b0, ", ", eps);
    s = vp_sigmas(steps, bd, b0, eps);
  } else if (name == "ays" || name.rfind("ays:", 0) == 0) {
    const std::string variant = name == "ays" ? args.get_string("model", "") : name.substr(4);
    if (name != "ays" && args.has("model"))
      fail("grid ", name, ": give the model once (", name, " or model=), not both");
    if (variant.empty()) fail("grid ays needs the model it was published for: ays:sd15, ays:sdxl or ays:svd");
    s = ays_sigmas(variant, steps);
  } else if (name == "beta") {
    const double a = args.get_double("alpha", 0.6), b = args.get_double("beta", 0.6);
    if (schedule.type() == ScheduleType::VpDiscrete) {
      for (int t : beta_timesteps(steps, schedule.num_train_steps(), a, b)) s.push_back(schedule.discrete_sigmas()[t]);
    } else {
      for (double q : beta_fractions(steps, a, b))
        s.push_back(schedule.sigma(schedule.t_min() + q * (schedule.t_max() - schedule.t_min())));
      for (size_t i = 1; i < s.size(); ++i)
        if (!(s[i] < s[i - 1])) fail("grid beta with ", steps, " steps repeats sigma ", s[i], "; use fewer steps");
    }
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
    if (!(s[i] > 0) || !std::isfinite(s[i]))
      fail(Field{"sigmas"}, ": value ", s[i], " at position ", i, " must be positive and finite");
    if (!(s[i + 1] < s[i]))
      fail(Field{"sigmas"}, ": not strictly decreasing at position ", i + 1, " (", s[i], " then ", s[i + 1], ")");
  }
  return s;
}

}  // namespace scoreflow
