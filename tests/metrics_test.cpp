// Tests for include/scoreflow/metrics.h: closed forms, properties, and the numpy/scipy reference
// written by scripts/gen_metrics_reference.py into tests/data/metrics_reference.json.
#include "scoreflow/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "scoreflow/error.h"

namespace sm = scoreflow::eval;

namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);

torch::Tensor vec(std::vector<double> v) { return torch::tensor(v, kF64); }

// Random orthogonal [D, D] from a seeded QR.
torch::Tensor orthogonal(int64_t d, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  return std::get<0>(at::linalg_qr(at::randn({d, d}, gen, kF64)));
}

torch::Tensor randn(std::vector<int64_t> shape, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  return at::randn(shape, gen, kF64);
}

// Runs `fn`, expects scoreflow::Error whose message contains every fragment.
template <typename Fn>
void expect_error(Fn fn, const std::vector<std::string>& fragments) {
  try {
    fn();
    ADD_FAILURE() << "expected scoreflow::Error";
  } catch (const scoreflow::Error& e) {
    for (const auto& f : fragments)
      EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << "message '" << e.what() << "' lacks '" << f << "'";
  }
}

double max_rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max()).item<double>();
}

nlohmann::json reference() {
  std::ifstream in(std::string(SCOREFLOW_SOURCE_DIR) + "/tests/data/metrics_reference.json");
  EXPECT_TRUE(in.good()) << "missing tests/data/metrics_reference.json";
  return nlohmann::json::parse(in);
}

torch::Tensor json_tensor(const nlohmann::json& j) {
  if (j[0].is_array()) {
    std::vector<torch::Tensor> rows;
    for (const auto& row : j) rows.push_back(vec(row.get<std::vector<double>>()));
    return torch::stack(rows);
  }
  return vec(j.get<std::vector<double>>());
}

}  // namespace

// ---- Gaussian W2 / Fréchet distance -------------------------------------------------------------

TEST(GaussianW2, OneDimensionalClosedForm) {
  // |m1 − m2|² + (s1 − s2)² with s = standard deviations 2 and 0.5.
  const double w2 = sm::gaussian_w2_squared(vec({1.5}), vec({4.0}).view({1, 1}), vec({-0.5}), vec({0.25}).view({1, 1}));
  EXPECT_NEAR(w2, 4.0 + 2.25, 1e-12);
}

TEST(GaussianW2, CommutingCovariancesMatchDiagonalFormula) {
  // S1 = Q diag(a) Qᵀ, S2 = Q diag(b) Qᵀ commute; W2² = |Δm|² + Σ(√a − √b)².
  const auto a = vec({0.1, 1.0, 2.5, 7.0, 0.0}), b = vec({3.0, 0.2, 2.5, 1.0, 0.4});
  const auto q = orthogonal(5, 1);
  const auto s1 = q.mm(torch::diag(a)).mm(q.t()), s2 = q.mm(torch::diag(b)).mm(q.t());
  const auto m1 = randn({5}, 2), m2 = randn({5}, 3);
  const double expected = ((m1 - m2).square().sum() + (a.sqrt() - b.sqrt()).square().sum()).item<double>();
  EXPECT_NEAR(sm::gaussian_w2_squared(m1, s1, m2, s2), expected, 1e-10 * expected);
  // Rotating both means as well leaves the diagonal problem.
  EXPECT_NEAR(sm::gaussian_w2_squared_diagonal(q.t().mv(m1), a, q.t().mv(m2), b), expected, 1e-10 * expected);
}

TEST(GaussianW2, TwoByTwoNonCommutingClosedForm) {
  // For 2×2 M = S1^½ S2 S1^½: tr M^½ = sqrt(tr M + 2 sqrt(det M)), tr M = tr S1S2,
  // det M = det S1 · det S2.
  const auto s1 = torch::tensor({{2.0, 0.7}, {0.7, 1.0}}, kF64);
  const auto s2 = torch::tensor({{0.5, -0.3}, {-0.3, 3.0}}, kF64);
  const auto m1 = vec({0.2, -1.0}), m2 = vec({1.0, 0.5});
  const double tr_m = s1.mm(s2).trace().item<double>();
  const double det_m = (s1.det() * s2.det()).item<double>();
  const double expected = (m1 - m2).square().sum().item<double>() + s1.trace().item<double>() +
                          s2.trace().item<double>() - 2.0 * std::sqrt(tr_m + 2.0 * std::sqrt(det_m));
  EXPECT_NEAR(sm::gaussian_w2_squared(m1, s1, m2, s2), expected, 1e-12 * std::abs(expected));
  EXPECT_NEAR(sm::gaussian_w2_squared(m2, s2, m1, s1), expected, 1e-12 * std::abs(expected));
}

TEST(GaussianW2, IdenticalStatisticsGiveZero) {
  const auto a = randn({6, 9}, 4);
  const auto full_rank = a.mm(a.t()) / 9.0;
  const auto b = randn({6, 2}, 5);
  const auto rank_two = b.mm(b.t());
  const auto mu = randn({6}, 6);
  for (const auto& s : {full_rank, rank_two}) {
    EXPECT_NEAR(sm::gaussian_w2_squared(mu, s, mu, s), 0.0, 1e-7 * s.trace().item<double>());
    EXPECT_NEAR(sm::frechet_distance(mu, s, mu, s), 0.0, 1e-7 * s.trace().item<double>());
  }
}

TEST(GaussianW2, DegenerateCovariances) {
  // Rank-one Gaussians along the same axis: the 1-D formula in the first coordinate.
  const auto s1 = torch::diag(vec({4.0, 0.0})), s2 = torch::diag(vec({9.0, 0.0}));
  EXPECT_NEAR(sm::gaussian_w2_squared(vec({0, 0}), s1, vec({0, 2}), s2), 1.0 + 4.0, 1e-12);
}

TEST(GaussianW2, FrechetDistanceOfTranslatedFeaturesIsShiftSquared) {
  // Same covariance, means differing by c: FD = |c|² exactly (the trace terms cancel).
  const auto x = randn({300, 4}, 7);
  const auto c = vec({0.5, -1.0, 2.0, 0.0});
  sm::MomentAccumulator a, b;
  a.add(x);
  b.add(x + c);
  EXPECT_NEAR(sm::frechet_distance(a, b), 5.25, 1e-9);
}

TEST(GaussianW2, SingularFloat32CovarianceIsAccepted) {
  // 100 samples in 256-D: rank 99; float32 storage makes tiny negative eigenvalues, not an error.
  sm::MomentAccumulator acc;
  acc.add(randn({100, 256}, 23));
  const auto sigma32 = acc.covariance().to(torch::kFloat32);
  const auto mu32 = acc.mean().to(torch::kFloat32);
  const double fd = sm::frechet_distance(mu32, sigma32, mu32, sigma32);
  EXPECT_NEAR(fd, 0.0, 1e-3 * sigma32.trace().item<double>());
}

TEST(GaussianW2, SqrtmPsdSquaresBack) {
  const auto a = randn({7, 5}, 8);
  const auto s = a.mm(a.t());  // rank 5 of 7
  const auto r = sm::sqrtm_psd(s);
  EXPECT_LT(max_rel_diff(r.mm(r), s), 1e-10);
  EXPECT_LT(max_rel_diff(r, r.t()), 1e-14);
}

TEST(GaussianW2, BadInputsAreNamed) {
  const auto s3 = torch::eye(3, kF64), s2 = torch::eye(2, kF64);
  expect_error([&] { sm::gaussian_w2_squared(torch::zeros({3}, kF64), s3, torch::zeros({2}, kF64), s2); },
               {"dimension mismatch", "3", "2"});
  expect_error([&] { sm::gaussian_w2_squared(torch::zeros({3}, kF64), s2, torch::zeros({3}, kF64), s3); },
               {"sigma1", "mu1 has dimension 3"});
  const auto not_psd = torch::diag(vec({1.0, -0.5, 2.0}));
  expect_error([&] { sm::gaussian_w2_squared(torch::zeros({3}, kF64), not_psd, torch::zeros({3}, kF64), s3); },
               {"sigma1", "not positive semidefinite"});
  const auto asym = torch::tensor({{1.0, 0.5}, {0.0, 1.0}}, kF64);
  expect_error([&] { sm::sqrtm_psd(asym); }, {"not symmetric"});
}

// ---- Against the numpy/scipy reference ----------------------------------------------------------

TEST(MetricsReference, MomentsMatchNumpyCov) {
  const auto ref = reference();
  const auto x = json_tensor(ref["x"]);
  sm::MomentAccumulator acc;
  acc.add(x.slice(0, 0, 37).to(torch::kFloat64));
  acc.add(x.slice(0, 37));
  EXPECT_LT(max_rel_diff(acc.mean(), json_tensor(ref["mu_x"])), 1e-12);
  EXPECT_LT(max_rel_diff(acc.covariance(), json_tensor(ref["sigma_x"])), 1e-12);
}

TEST(MetricsReference, FidMatchesScipySqrtm) {
  const auto ref = reference();
  const auto x = json_tensor(ref["x"]), y = json_tensor(ref["y"]);
  sm::MomentAccumulator a, b, b_rest;
  a.add(x);
  b.add(y.slice(0, 0, 50));
  b_rest.add(y.slice(0, 50));
  b.merge(b_rest);
  const double expected = ref["fid_xy"].get<double>();
  EXPECT_NEAR(sm::frechet_distance(a, b), expected, 1e-6 * expected);
  // Same from the reference's own statistics.
  EXPECT_NEAR(sm::frechet_distance(json_tensor(ref["mu_x"]), json_tensor(ref["sigma_x"]), json_tensor(ref["mu_y"]),
                                   json_tensor(ref["sigma_y"])),
              expected, 1e-6 * expected);
}

TEST(MetricsReference, BuresW2MatchesScipy) {
  const auto ref = reference();  // keep alive: ranging over reference()[...] would dangle
  ASSERT_EQ(ref["gaussians"].size(), 3u);
  for (const auto& g : ref["gaussians"]) {
    const auto mu1 = json_tensor(g["mu1"]), s1 = json_tensor(g["sigma1"]);
    const auto mu2 = json_tensor(g["mu2"]), s2 = json_tensor(g["sigma2"]);
    const double w2 = g["w2_squared"].get<double>(), fid = g["fid"].get<double>();
    EXPECT_NEAR(sm::gaussian_w2_squared(mu1, s1, mu2, s2), w2, 1e-6 * w2);
    // Float32 statistics (as pytorch-fid .npz files may hold) still agree to float32 precision.
    EXPECT_NEAR(sm::frechet_distance(mu1.to(torch::kFloat32), s1.to(torch::kFloat32), mu2.to(torch::kFloat32),
                                     s2.to(torch::kFloat32)),
                fid, 1e-4 * fid);
    EXPECT_NEAR(sm::frechet_distance(mu1, s1, mu2, s2), fid, 1e-6 * fid);
  }
}

TEST(MetricsReference, KidMatchesNumpy) {
  const auto ref = reference();
  const auto x = json_tensor(ref["x"]), y = json_tensor(ref["y"]);
  const double all = ref["kid_all"].get<double>();
  EXPECT_NEAR(sm::mmd2_unbiased_polynomial(x, y), all, 1e-6 * std::abs(all));
  // One subset of every row: a permutation, so no RNG has to match.
  const auto one = sm::kernel_inception_distance(x, y, sm::KidOptions{1, x.size(0), 123});
  EXPECT_NEAR(one.mean, all, 1e-6 * std::abs(all));
  EXPECT_EQ(one.std, 0.0);

  ASSERT_EQ(ref["kid_subsets"].size(), 5u);
  std::vector<sm::KidSubset> subsets;
  for (const auto& s : ref["kid_subsets"])
    subsets.emplace_back(s["x"].get<std::vector<int64_t>>(), s["y"].get<std::vector<int64_t>>());
  const auto kid = sm::kernel_inception_distance(x, y, subsets);
  const double mean = ref["kid_subsets_mean"].get<double>(), std = ref["kid_subsets_std"].get<double>();
  EXPECT_NEAR(kid.mean, mean, 1e-6 * std::abs(mean));
  EXPECT_NEAR(kid.std, std, 1e-6 * std);
}

// ---- MomentAccumulator --------------------------------------------------------------------------

TEST(MomentAccumulator, MergedShardsEqualOnePass) {
  const auto x = randn({501, 6}, 9) * 3.0 + 10.0;
  sm::MomentAccumulator one_pass, first, second;
  one_pass.add(x);
  first.add(x.slice(0, 0, 200));
  second.add(x.slice(0, 200, 350));
  second.add(x.slice(0, 350));
  first.merge(second);
  EXPECT_EQ(first.count(), 501);
  EXPECT_LT(max_rel_diff(first.mean(), one_pass.mean()), 1e-12);
  EXPECT_LT(max_rel_diff(first.covariance(), one_pass.covariance()), 1e-12);

  sm::MomentAccumulator empty, row_by_row;
  empty.merge(one_pass);  // merging into an empty accumulator copies
  EXPECT_LT(max_rel_diff(empty.covariance(), one_pass.covariance()), 1e-15);
  for (int64_t i = 0; i < x.size(0); ++i) row_by_row.add(x.slice(0, i, i + 1));
  EXPECT_LT(max_rel_diff(row_by_row.covariance(), one_pass.covariance()), 1e-12);
}

TEST(MomentAccumulator, CovarianceIsTranslationInvariantFarFromZero) {
  // Naive Σxxᵀ − n·x̄x̄ᵀ loses all digits at an offset of 1e8 with unit spread.
  const auto x = randn({400, 3}, 10);
  sm::MomentAccumulator near, far;
  near.add(x);
  far.add(x.slice(0, 0, 100) + 1e8);
  far.add(x.slice(0, 100) + 1e8);
  EXPECT_LT(max_rel_diff(far.covariance(), near.covariance()), 1e-8);
}

TEST(MomentAccumulator, AcceptsFloat32AndReportsBadInput) {
  sm::MomentAccumulator acc;
  acc.add(torch::ones({1, 4}, torch::kFloat32));
  expect_error([&] { acc.covariance(); }, {"at least 2 samples", "got 1"});
  expect_error([&] { acc.add(torch::ones({2, 5})); }, {"dimension 5", "dimension 4"});
  auto bad = torch::ones({8, 4});
  bad[5][2] = std::nan("");
  expect_error([&] { acc.add(bad); }, {"row 6", "NaN"});  // one row already held: global row 6
  bad[5][2] = INFINITY;
  expect_error([&] { acc.add(bad); }, {"row 6"});
  expect_error([&] { acc.add(torch::ones({4})); }, {"[N, D]"});
  expect_error([&] { acc.add(torch::ones({2, 4}, torch::kInt64)); }, {"floating"});
  sm::MomentAccumulator empty;
  expect_error([&] { empty.mean(); }, {"at least 1 sample"});
  // Unchecked (the caller checks on its own schedule, eval fid at the end): the NaN goes into
  // the sums instead of throwing.
  sm::MomentAccumulator unchecked;
  unchecked.add(torch::ones({2, 4}));
  bad[5][2] = std::nan("");
  unchecked.add(bad, /*check_finite=*/false);
  EXPECT_EQ(unchecked.count(), 10);
  EXPECT_TRUE(std::isnan(unchecked.mean()[2].item<double>()));
  EXPECT_EQ(unchecked.mean()[0].item<double>(), 1.0);
}

// ---- KID
// -----------------------------------------------------------------------------------------

TEST(Kid, SeededAndSensitiveToShift) {
  const auto x = randn({300, 8}, 11), y = randn({300, 8}, 12);
  const sm::KidOptions opts{20, 100, 7};
  const auto same = sm::kernel_inception_distance(x, y, opts);
  EXPECT_EQ(same.mean, sm::kernel_inception_distance(x, y, opts).mean);
  EXPECT_NE(same.mean, sm::kernel_inception_distance(x, y, sm::KidOptions{20, 100, 8}).mean);
  // Same distribution: unbiased estimate centred on 0, within a few standard deviations.
  EXPECT_LT(std::abs(same.mean), 4.0 * same.std + 1e-12);
  const auto shifted = sm::kernel_inception_distance(x, y + 1.0, opts);
  EXPECT_GT(shifted.mean, 3.0 * shifted.std);
  EXPECT_GT(shifted.mean, 100.0 * std::abs(same.mean));
}

TEST(Kid, TooFewSamplesSaysHowMany) {
  const auto x = randn({50, 4}, 13), y = randn({80, 4}, 14);
  expect_error(
      [&] {
        sm::kernel_inception_distance(x, y, sm::KidOptions{10, 60, 0});
      },
      {"needs at least 60", "got 50 and 80"});
  expect_error(
      [&] {
        sm::kernel_inception_distance(x, randn({80, 5}, 15), sm::KidOptions{10, 20, 0});
      },
      {"dimension mismatch", "4", "5"});
  expect_error([&] { sm::kernel_inception_distance(x, y, {sm::KidSubset{{0, 50}, {0, 1}}}); }, {"index 50", "50 rows"});
}

// ---- 1-D and sliced W2
// ---------------------------------------------------------------------------

TEST(W2OneD, HandComputedUnequalSizes) {
  // {0,1} vs {0,1,2}: quantiles differ by 1 on [1/3, 1/2) and [2/3, 1): 1/6 + 1/3.
  EXPECT_NEAR(sm::w2_squared_1d(vec({1, 0}), vec({2, 0, 1})), 0.5, 1e-15);
  EXPECT_NEAR(sm::w2_squared_1d(vec({0}), vec({0, 1})), 0.5, 1e-15);
  EXPECT_NEAR(sm::w2_squared_1d(vec({3, 1}), vec({2, 5})), (1.0 + 4.0) / 2.0, 1e-15);
}

TEST(W2OneD, ReplicatingSamplesLeavesTheMeasureUnchanged) {
  const auto x = randn({37}, 16), y = randn({23}, 17) * 2.0 + 0.5;
  const double w2 = sm::w2_squared_1d(x, y);
  EXPECT_NEAR(sm::w2_squared_1d(x.repeat({3}), y), w2, 1e-12 * w2);
  EXPECT_NEAR(sm::w2_squared_1d(x.repeat({23}), y.repeat({37})), w2, 1e-12 * w2);
  EXPECT_NEAR(sm::w2_squared_1d(y, x), w2, 1e-12 * w2);
}

TEST(SlicedW2, IdenticalSetsGiveZero) {
  const auto x = randn({200, 3}, 18);
  EXPECT_EQ(sm::sliced_w2_squared(x, x), 0.0);
  // The same measure with every point twice (N ≠ M).
  EXPECT_NEAR(sm::sliced_w2_squared(x, x.repeat({2, 1})), 0.0, 1e-13);
}

TEST(SlicedW2, ShiftGivesShiftSquaredOverDimension) {
  // Projections of y = x + c differ by the constant u·c: W2² = (u·c)², E over the sphere = |c|²/D.
  const auto x = randn({150, 2}, 19);
  const auto c = vec({3.0, -4.0});
  const double expected = 25.0 / 2.0;
  const double sw2 = sm::sliced_w2_squared(x, x + c, sm::SlicedW2Options{4000, 3});
  EXPECT_NEAR(sw2, expected, 0.05 * expected);
  const double sw2_unequal = sm::sliced_w2_squared(x, x.repeat({3, 1}) + c, sm::SlicedW2Options{4000, 3});
  EXPECT_NEAR(sw2_unequal, sw2, 1e-10 * sw2);  // same measure, same directions
  // In 3-D as well.
  const auto x3 = randn({100, 3}, 20);
  const auto c3 = vec({1.0, 2.0, -2.0});
  EXPECT_NEAR(sm::sliced_w2_squared(x3, x3 + c3, sm::SlicedW2Options{4000, 4}), 3.0, 0.05 * 3.0);
}

TEST(SlicedW2, OneDimensionIsExactW2) {
  const auto x = randn({40, 1}, 21), y = randn({25, 1}, 22) + 1.0;
  const double exact = sm::w2_squared_1d(x.view({-1}), y.view({-1}));
  EXPECT_NEAR(sm::sliced_w2_squared(x, y, sm::SlicedW2Options{3, 0}), exact, 1e-12 * exact);
}

TEST(SlicedW2, BadInputsAreNamed) {
  expect_error([&] { sm::sliced_w2_squared(randn({5, 2}, 0), randn({5, 3}, 1)); }, {"dimension mismatch", "2", "3"});
  auto bad = randn({5, 2}, 2);
  bad[3][1] = std::nan("");
  expect_error([&] { sm::sliced_w2_squared(randn({5, 2}, 0), bad); }, {"y row 3"});
}
