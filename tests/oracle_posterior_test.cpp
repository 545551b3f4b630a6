// The mixture and empirical oracles (two matrix products per call, models/mixture_posterior.h)
// against a plain reference written here: per sample and component, loops over elements in double.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>

#include "scoreflow/builtin.h"
#include "scoreflow/empirical.h"

using namespace scoreflow;

namespace {

constexpr double kTwoPi = 6.283185307179586476925286766559;

/// log p_σ(x) [B], E[x0|x] [B, d] and p(k|x) [B, K] of Σ_k π_k N(μ_k, diag v_k) smoothed by σ²,
/// by direct sums: no expansion of ‖x − μ‖², no blocking.
struct Reference {
  torch::Tensor log_p, mean, resp;
};
Reference reference(const torch::Tensor& x_in, const std::vector<double>& sigma, const torch::Tensor& means,
                    const torch::Tensor& vars, const torch::Tensor& weights) {
  const int64_t b = x_in.size(0), k = means.size(0), d = means.size(1);
  torch::Tensor x = x_in.to(torch::kFloat64).reshape({b, d}).contiguous();
  torch::Tensor mu = means.contiguous(), v = vars.contiguous(), w = weights.contiguous();
  auto xa = x.accessor<double, 2>();
  auto ma = mu.accessor<double, 2>();
  auto va = v.accessor<double, 2>();
  auto wa = w.accessor<double, 1>();
  Reference out{torch::empty({b}, torch::kFloat64), torch::zeros({b, d}, torch::kFloat64),
                torch::empty({b, k}, torch::kFloat64)};
  auto log_p = out.log_p.accessor<double, 1>();
  auto mean = out.mean.accessor<double, 2>();
  auto resp = out.resp.accessor<double, 2>();
  for (int64_t i = 0; i < b; ++i) {
    const double s2 = std::pow(sigma.size() == 1 ? sigma[0] : sigma[i], 2);
    std::vector<double> logit(k);
    double top = -INFINITY;
    for (int64_t c = 0; c < k; ++c) {
      double q = 0, logdet = 0;
      for (int64_t j = 0; j < d; ++j) {
        const double t = va[c][j] + s2, diff = xa[i][j] - ma[c][j];
        q += diff * diff / t;
        logdet += std::log(t);
      }
      logit[c] = std::log(wa[c]) - 0.5 * (q + logdet);
      top = std::max(top, logit[c]);
    }
    double total = 0;
    for (int64_t c = 0; c < k; ++c) total += std::exp(logit[c] - top);
    const double lse = top + std::log(total);
    log_p[i] = lse - 0.5 * d * std::log(kTwoPi);
    for (int64_t c = 0; c < k; ++c) {
      const double r = std::exp(logit[c] - lse);
      resp[i][c] = r;
      for (int64_t j = 0; j < d; ++j) {
        const double t = va[c][j] + s2;
        mean[i][j] += r * (ma[c][j] + va[c][j] / t * (xa[i][j] - ma[c][j]));
      }
    }
  }
  return out;
}

void expect_close(const torch::Tensor& got, const torch::Tensor& want, double tol, const std::string& what) {
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  const double err = ((got.to(torch::kFloat64) - want).abs() / (want.abs() + 1)).max().item<double>();
  EXPECT_LE(err, tol) << what;
}

/// Checks denoise, log_prob, score and (if any) features of `model` against the reference.
void check_mixture(const GaussianMixtureModel& model, const torch::Tensor& x, const std::string& name) {
  const std::vector<std::vector<double>> sigmas = {{0.002}, {0.05}, {0.5}, {5.0}, {80.0}};
  std::vector<std::vector<double>> all = sigmas;
  std::vector<double> per_sample;
  for (int64_t i = 0; i < x.size(0); ++i) per_sample.push_back(0.01 * std::pow(1.6, static_cast<double>(i % 20)));
  all.push_back(per_sample);
  for (const auto& sigma : all) {
    const std::string what = name + " sigma " + std::to_string(sigma[0]) + (sigma.size() > 1 ? " (per sample)" : "");
    Reference want = reference(x, sigma, model.means(), model.variances(), model.weights());
    torch::Tensor xd = x.to(torch::kFloat64);
    expect_close(model.denoise(xd, sigma, {}).reshape({x.size(0), -1}), want.mean, 1e-12, what + " denoise");
    expect_close(model.log_prob(xd, sigma), want.log_p, 1e-12, what + " log_prob");
    // The score is (D − x)/σ²: compare σ²·score, whose rounding does not grow as σ → 0.
    torch::Tensor s2 = torch::tensor(sigma, torch::kFloat64).pow(2).reshape({-1, 1});
    expect_close(model.score(xd, sigma).reshape({x.size(0), -1}) * s2, want.mean - xd.reshape({x.size(0), -1}), 1e-12,
                 what + " score");
    // float32 in, float32 out: the float64 arithmetic on the rounded input, rounded once.
    torch::Tensor x32 = xd.to(torch::kFloat32);
    Reference want32 = reference(x32, sigma, model.means(), model.variances(), model.weights());
    expect_close(model.denoise(x32, sigma, {}).reshape({x.size(0), -1}), want32.mean, 1e-6, what + " float32 denoise");
    if (model.has_features()) expect_close(model.features(xd, sigma, {}), want.resp, 1e-6, what + " features");
  }
}

torch::Tensor noisy_points(const torch::Tensor& means, int64_t b, double spread, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::Tensor pick = at::randint(means.size(0), {b}, gen, torch::kLong);
  torch::Tensor x = means.index_select(0, pick) + spread * at::randn({b, means.size(1)}, gen, torch::kFloat64);
  return x;
}

}  // namespace

TEST(OraclePosterior, BuiltinMixturesMatchTheDirectSums) {
  for (const std::string spec :
       {"builtin:gmm:shape=1x4x4,k=3,features=true", "builtin:gmm:shape=2,k=5", "builtin:ring8:features=true",
        "builtin:gaussian:shape=6,mean=0.3,std=0.5", "builtin:gaussian:shape=5,std_min=0.2,std_max=1.5"}) {
    auto model = make_builtin(spec);
    const int64_t d = model->means().size(1);
    // Samples near the components, between them and far away, in a batch that is not a multiple
    // of the 12-row tile.
    torch::Tensor x = torch::cat({noisy_points(model->means(), 17, 0.05, 1), noisy_points(model->means(), 9, 1.0, 2),
                                  3 * torch::ones({1, d}, torch::kFloat64)});
    check_mixture(*model, x, spec);
  }
}

TEST(OraclePosterior, ProductsThroughLibTorchGiveTheSameExactValues) {
  // Both paths of the two products (the whole batch through LibTorch where it has MKL, the kernel
  // elsewhere), forced: the same direct sums to the same tolerance, across component blocks.
  const char* before = std::getenv("SCOREFLOW_ORACLE_PRODUCTS");
  const std::string saved = before ? before : "";
  for (const char* path : {"torch", "kernel"}) {
    setenv("SCOREFLOW_ORACLE_PRODUCTS", path, 1);
    auto model = make_builtin("builtin:gmm:shape=1x4x4,k=3,features=true");
    torch::Tensor x = torch::cat({noisy_points(model->means(), 17, 0.05, 1), noisy_points(model->means(), 9, 1.0, 2)});
    check_mixture(*model, x, std::string("gmm, products: ") + path);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
    const int64_t k = 200, d = 5;
    torch::Tensor means = at::randn({k, d}, gen, torch::kFloat64);
    ModelMetadata meta;
    meta.shape = {d};
    meta.features = "responsibilities";
    GaussianMixtureModel many("test", "test", means, torch::full({k, d}, 0.05, torch::kFloat64),
                              torch::full({k}, 1.0 / k, torch::kFloat64), meta);
    check_mixture(many, noisy_points(means, 25, 0.3, 5), std::string("200 components, products: ") + path);
    // LibTorch's path streams over blocks of about 2^19 / batch components (at least 128): a batch
    // of 2100 splits the 200 components 128 + 72.
    if (std::string(path) == "torch")
      check_mixture(many, noisy_points(means, 2100, 0.3, 6), "200 components in two blocks, products: torch");
  }
  if (before)
    setenv("SCOREFLOW_ORACLE_PRODUCTS", saved.c_str(), 1);
  else
    unsetenv("SCOREFLOW_ORACLE_PRODUCTS");
}

TEST(OraclePosterior, ManyUnequalComponentsStreamAcrossBlocks) {
  // 300 components (three 128-component blocks), unequal isotropic variances and weights.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  const int64_t k = 300, d = 7;
  torch::Tensor means = at::randn({k, d}, gen, torch::kFloat64) + 4;  // off-centre: the code centres
  torch::Tensor vars = (0.01 + 0.3 * at::rand({k, 1}, gen, torch::kFloat64)).expand({k, d}).contiguous();
  torch::Tensor weights = at::rand({k}, gen, torch::kFloat64) + 0.05;
  weights = weights / weights.sum();
  ModelMetadata meta;
  meta.shape = {d};
  meta.features = "responsibilities";
  GaussianMixtureModel model("test", "test", means, vars, weights, meta);
  check_mixture(model, noisy_points(means, 40, 0.3, 3), "300 components");
  // Two threads (one sample block each) give the same bits: each row's sums run in the same order.
  torch::Tensor x = noisy_points(means, 30, 0.3, 4);
  const int threads = at::get_num_threads();
  std::vector<torch::Tensor> one, two;
  for (int n : {1, 2}) {
    at::set_num_threads(n);
    auto& out = n == 1 ? one : two;
    for (double sigma : {0.05, 5.0})
      out.insert(out.end(),
                 {model.denoise(x, {sigma}, {}), model.log_prob(x, {sigma}), model.features(x, {sigma}, {})});
  }
  at::set_num_threads(threads);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_TRUE(torch::equal(one[i], two[i])) << "output " << i;
}

TEST(OraclePosterior, EmpiricalMatchesTheDirectSums) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  torch::Tensor data = at::randn({300, 5}, gen, torch::kFloat64) * 0.7 + 0.2;
  ModelMetadata meta;
  meta.shape = {5};
  EmpiricalModel model("empirical-test", "test data", data, meta);
  torch::Tensor x = torch::cat({noisy_points(data, 13, 0.01, 5), noisy_points(data, 6, 1.0, 6)});
  // The empirical distribution is the mixture (1/N) Σ_i N(x_i, 0); σ > 0 keeps every term finite.
  torch::Tensor zero = torch::zeros_like(data), uniform = torch::full({300}, 1.0 / 300, torch::kFloat64);
  for (double sigma : {0.01, 0.1, 1.0, 30.0}) {
    Reference want = reference(x, {sigma}, data, zero, uniform);
    const std::string what = "sigma " + std::to_string(sigma);
    expect_close(model.denoise(x, {sigma}, {}), want.mean, 1e-12, what + " denoise");
    expect_close(model.log_prob(x, {sigma}), want.log_p, 1e-12, what + " log_prob");
  }
  EXPECT_TRUE(torch::allclose(model.data(), data, 0, 1e-14));
}
