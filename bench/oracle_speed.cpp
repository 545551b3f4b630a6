// Exact-oracle speed on the CPU (issue #21, a benchmark, not a test): calls per second of
// builtin:gmm (3×32×32 and 2-D), ring8 and builtin:empirical at batch 64 and 1000, the achieved
// GFLOP/s (two products of B·K·d multiply-adds per call) against torch::mm of the same two float64
// shapes timed in the same process, and the previous element-wise formulation (kept here, verbatim
// in its arithmetic) for a before/after ratio taken side by side. Then the sampling targets with a
// plain EDM loop on the Karras grid: builtin:gmm 1000 samples × 10 Euler steps, Heun 500 steps × 256.
//   scoreflow_oracle_bench [--threads N] [--repeat R] [--data PATH] [--previous]
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <functional>
#include <string>
#include <thread>

#include "scoreflow/builtin.h"
#include "scoreflow/empirical.h"

using namespace scoreflow;

namespace {

double seconds(const std::function<void()>& fn) {
  auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// Median of `repeat` timings after one warm-up; a single cold timing when one run exceeds `slow` s.
double median_seconds(int repeat, const std::function<void()>& fn, double slow = 5) {
  const double first = seconds(fn);
  if (first > slow) return first;
  std::vector<double> t;
  for (int r = 0; r < repeat; ++r) t.push_back(seconds(fn));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// The previous formulation (before issue #21): [B, K, d] element-wise tensors for the mixture,
// 4096-item chunks through torch::matmul for the empirical oracle.
torch::Tensor previous_mixture(const GaussianMixtureModel& m, const torch::Tensor& x, double sigma) {
  const int64_t b = x.size(0);
  torch::Tensor xf = x.to(torch::kFloat64).reshape({b, 1, -1});
  const double s2 = sigma * sigma;
  torch::Tensor mu = m.means().unsqueeze(0), v = m.variances().unsqueeze(0);
  torch::Tensor total = v + s2;
  torch::Tensor diff = xf - mu;
  torch::Tensor log_r = m.weights().log().unsqueeze(0) - 0.5 * (diff.pow(2) / total + total.log()).sum(-1);
  torch::Tensor post_mean = mu + v / total * diff;
  torch::Tensor r = torch::softmax(log_r, 1).unsqueeze(-1);
  return (r * post_mean).sum(1).reshape(x.sizes()).to(x.scalar_type());
}

torch::Tensor previous_empirical(const torch::Tensor& data, const torch::Tensor& norms, const torch::Tensor& x_in,
                                 double sigma) {
  const int64_t b = x_in.size(0), chunk_size = 4096;
  torch::Tensor x = x_in.to(torch::kFloat64).reshape({b, -1});
  const double inv2s2 = 0.5 / (sigma * sigma);
  torch::Tensor xnorm = x.pow(2).sum(1, true);
  torch::Tensor m = torch::full({b, 1}, -INFINITY, torch::kFloat64), s = torch::zeros({b, 1}, torch::kFloat64);
  torch::Tensor a = torch::zeros_like(x);
  for (int64_t begin = 0; begin < data.size(0); begin += chunk_size) {
    const int64_t n = std::min(chunk_size, data.size(0) - begin);
    torch::Tensor chunk = data.narrow(0, begin, n);
    torch::Tensor dist2 = (xnorm - 2 * x.matmul(chunk.t()) + norms.narrow(0, begin, n).unsqueeze(0)).clamp_min(0);
    torch::Tensor logits = -dist2 * inv2s2;
    torch::Tensor m_new = torch::maximum(m, std::get<0>(logits.max(1, true)));
    torch::Tensor scale = torch::exp(m - m_new), w = torch::exp(logits - m_new);
    s = s * scale + w.sum(1, true);
    a = a * scale + w.matmul(chunk);
    m = m_new;
  }
  return (a / s).reshape(x_in.sizes()).to(x_in.scalar_type());
}

const std::vector<double> kSigmas = {80, 10, 1, 0.1, 0.01};  // one timed run: one call at each

/// x at noise level sigma around points of `centres` [K, ...] (float32, like a sampler's state).
torch::Tensor noisy(const torch::Tensor& centres, int64_t b, double sigma, const std::vector<int64_t>& shape) {
  torch::Tensor pick = torch::randint(centres.size(0), {b}, torch::kLong);
  std::vector<int64_t> full{b};
  full.insert(full.end(), shape.begin(), shape.end());
  return (centres.index_select(0, pick).reshape(full) + sigma * torch::randn(full, torch::kFloat64))
      .to(torch::kFloat32);
}

std::vector<double> karras(int steps, double smin = 0.002, double smax = 80, double rho = 7) {
  std::vector<double> s;
  for (int i = 0; i < steps; ++i) {
    const double t = steps == 1 ? 0 : static_cast<double>(i) / (steps - 1);
    s.push_back(std::pow(std::pow(smax, 1 / rho) + t * (std::pow(smin, 1 / rho) - std::pow(smax, 1 / rho)), rho));
  }
  s.push_back(0);
  return s;
}

using Denoise = std::function<torch::Tensor(const torch::Tensor&, double)>;

/// EDM's deterministic sampler (Karras et al. 2022, Algorithm 1 without churn): Euler, or Heun's
/// second-order correction where σ_next > 0.
torch::Tensor edm_sample(const Denoise& denoise, torch::Tensor x, const std::vector<double>& sigmas, bool heun) {
  for (size_t i = 0; i + 1 < sigmas.size(); ++i) {
    const double sigma = sigmas[i], sigma_next = sigmas[i + 1];
    torch::Tensor d = (x - denoise(x, sigma)) / sigma;
    torch::Tensor x_next = x + (sigma_next - sigma) * d;
    if (heun && sigma_next > 0) {
      torch::Tensor d2 = (x_next - denoise(x_next, sigma_next)) / sigma_next;
      x_next = x + (sigma_next - sigma) * 0.5 * (d + d2);
    }
    x = x_next;
  }
  return x;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency())), repeat = 3;
  std::string data = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
  bool previous = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--previous")
      previous = true;
    else if (i + 1 < argc && a == "--threads")
      threads = std::stoi(argv[++i]);
    else if (i + 1 < argc && a == "--repeat")
      repeat = std::stoi(argv[++i]);
    else if (i + 1 < argc && a == "--data")
      data = argv[++i];
    else {
      std::fprintf(stderr, "error: unknown argument '%s' (--threads N, --repeat R, --data PATH, --previous)\n",
                   a.c_str());
      return 2;
    }
  }
  at::set_num_threads(threads);
  torch::manual_seed(0);
  torch::NoGradGuard no_grad;
  std::printf("threads %d, ms per call = median of %d runs of one call at each σ in {80, 10, 1, 0.1, 0.01}\n\n",
              at::get_num_threads(), repeat);
  std::printf("| oracle | K × d | batch | calls/s | ms/call | GFLOP/s | torch::mm GFLOP/s | ms ÷ torch::mm ms |%s\n",
              previous ? " previous ms/call | speed-up |" : "");
  std::printf("|---|---|---|---|---|---|---|---|%s\n", previous ? "---|---|" : "");

  struct Case {
    std::string name;
    std::shared_ptr<Model> model;
    torch::Tensor centres;  // [K, d] float64
    Denoise old;
  };
  std::vector<Case> cases;
  for (const std::string spec : {"builtin:gmm", "builtin:gmm:shape=2", "builtin:ring8"}) {
    auto m = make_builtin(spec);
    cases.push_back(
        {spec, m, m->means(), [m](const torch::Tensor& x, double s) { return previous_mixture(*m, x, s); }});
  }
  auto emp = make_empirical("builtin:empirical:data=" + data + ",limit=10000");
  torch::Tensor items = emp->data(), norms = items.pow(2).sum(1);
  cases.push_back(
      {"builtin:empirical (Fashion-MNIST, 10 000)", emp, items,
       [items, norms](const torch::Tensor& x, double s) { return previous_empirical(items, norms, x, s); }});

  for (const Case& c : cases) {
    const int64_t k = c.centres.size(0), d = c.centres.size(1);
    for (int64_t b : {64, 1000}) {
      std::vector<torch::Tensor> xs;
      for (double s : kSigmas) xs.push_back(noisy(c.centres, b, s, c.model->metadata().shape));
      auto run = [&](const Denoise& fn) {
        return median_seconds(repeat,
                              [&] {
                                for (size_t i = 0; i < kSigmas.size(); ++i) fn(xs[i], kSigmas[i]);
                              }) /
               kSigmas.size();
      };
      const double t = run([&](const torch::Tensor& x, double s) { return c.model->denoise(x, {s}, {}); });
      torch::Tensor a = torch::randn({b, d}, torch::kFloat64), m = torch::randn({k, d}, torch::kFloat64),
                    r = torch::randn({b, k}, torch::kFloat64);
      const double t_mm = median_seconds(repeat, [&] {
        torch::mm(a, m.t());
        torch::mm(r, m);
      });
      const double flop = 4.0 * b * k * d;
      std::printf("| %s | %lld × %lld | %lld | %.1f | %.3g | %.2f | %.2f | %.2f |", c.name.c_str(),
                  static_cast<long long>(k), static_cast<long long>(d), static_cast<long long>(b), 1 / t, t * 1e3,
                  flop / t / 1e9, flop / t_mm / 1e9, t / t_mm);
      if (previous) {
        const double t_old = run(c.old);
        std::printf(" %.3g | %.1f× |", t_old * 1e3, t_old / t);
      }
      std::printf("\n");
      std::fflush(stdout);
    }
  }

  // The sampling targets.
  auto gmm = make_builtin("builtin:gmm");
  Denoise fast = [&](const torch::Tensor& x, double s) { return gmm->denoise(x, {s}, {}); };
  Denoise old = [&](const torch::Tensor& x, double s) { return previous_mixture(*gmm, x, s); };
  auto target = [&](const char* what, int64_t n, int steps, bool heun, const Denoise& fn) {
    torch::Tensor x0 = 80 * torch::randn({n, 3, 32, 32});
    const std::clock_t cpu0 = std::clock();
    const double t = seconds([&] { edm_sample(fn, x0, karras(steps), heun); });
    // Process CPU time (all threads): on a shared machine, what the run would take alone on one core.
    const double cpu = static_cast<double>(std::clock() - cpu0) / CLOCKS_PER_SEC;
    std::printf("%s: %.2f s wall, %.2f s CPU\n", what, t, cpu);
    std::fflush(stdout);
  };
  std::printf("\n");
  target("builtin:gmm, 1000 samples × 10 Euler steps (target < 1 s)", 1000, 10, false, fast);
  target("builtin:gmm, 256 samples × 500 Heun steps, 999 calls (target < 10 s)", 256, 500, true, fast);
  if (previous) target("previous formulation: builtin:gmm, 1000 samples × 10 Euler steps", 1000, 10, false, old);
  return 0;
}
