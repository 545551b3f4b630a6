// TorchScript loading, metadata, prediction conversions against the exact Gaussian oracle,
// classifier-free guidance, and the errors a bad model file must produce.
#include "scoreflow/model.h"

#include <gtest/gtest.h>
#include <torch/script.h>

#include <cmath>

#include "scoreflow/builtin.h"
#include "scoreflow/error.h"
#include "scoreflow/npy.h"

using namespace scoreflow;

namespace {

const std::string kFixtures = SCOREFLOW_FIXTURE_DIR;

std::string fixture(const std::string& name) { return kFixtures + "/" + name; }

/// Expects open_model (and one denoise call) to throw an Error whose message contains `needle`.
void expect_error(const std::string& path, const std::string& needle, const std::vector<std::string>& meta = {}) {
  try {
    auto model = open_model(path, "", meta);
    Denoiser d(model);
    std::vector<int64_t> shape{2};
    shape.insert(shape.end(), model->metadata().shape.begin(), model->metadata().shape.end());
    d(torch::randn(shape), 0.05);
    d.check_finite();
    FAIL() << path << ": no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
  }
}

// Exact network outputs for Gaussian data N(μ, s0²I) under the continuous VP-linear schedule
// (β 0.1..20), written in TorchScript: the network sees x_t and t and knows nothing of σ-space.
const char* kGaussianNet = R"(
def _stats(self, x_t, t):
    log_a = -0.25 * t * t * (20.0 - 0.1) - 0.5 * t * 0.1
    a = torch.exp(log_a).view(-1, 1)
    s = torch.sqrt(1.0 - a * a)
    x0 = 0.3 + a * 0.25 / (a * a * 0.25 + s * s) * (x_t - a * 0.3)
    eps = (x_t - a * x0) / s
    return a, s, x0, eps

def eps(self, x_t, t):
    a, s, x0, eps = self._stats(x_t, t)
    return eps

def x0(self, x_t, t):
    a, s, x0, eps = self._stats(x_t, t)
    return x0

def v(self, x_t, t):
    a, s, x0, eps = self._stats(x_t, t)
    return a * eps - s * x0

def score(self, x_t, t):
    a, s, x0, eps = self._stats(x_t, t)
    return -eps / s
)";

// Rectified flow: x_t = (1 − t) x0 + t ε, output ε − E[x0|x_t] for the same Gaussian data.
const char* kFlowNet = R"(
def forward(self, x_t, t):
    a = (1.0 - t).view(-1, 1)
    s = t.view(-1, 1)
    x0 = 0.3 + a * 0.25 / (a * a * 0.25 + s * s) * (x_t - a * 0.3)
    eps = (x_t - a * x0) / s
    return eps - x0
)";

std::string save_module(const std::string& body, const std::string& forward_of, const std::string& meta,
                        const std::string& name) {
  torch::jit::Module m("GaussianNet");
  std::string source = body;
  if (!forward_of.empty()) source += "\ndef forward(self, x_t, t):\n    return self." + forward_of + "(x_t, t)\n";
  m.define(source);
  std::string path = ::testing::TempDir() + "/" + name;
  m.save(path, {{"scoreflow.json", meta}});
  return path;
}

}  // namespace

TEST(TorchScriptModel, FixtureFromPythonMatchesReferenceDenoiser) {
  auto model = open_model(fixture("tiny_eps.pt"));
  auto ref = io::read_npz(fixture("tiny_eps_ref.npz"));
  torch::Tensor x = io::to_tensor(ref.at("x"));
  for (int n : {10, 500, 990}) {
    double sigma = io::to_tensor(ref.at("sigma_" + std::to_string(n))).item<double>();
    torch::Tensor want = io::to_tensor(ref.at("denoised_" + std::to_string(n)));
    torch::Tensor got = Denoiser(model)(x, sigma).to(torch::kFloat64);
    EXPECT_TRUE(torch::allclose(got, want, 1e-4, 1e-4))
        << "n=" << n << " max diff " << (got - want).abs().max().item<double>();
  }
  EXPECT_EQ(model->metadata().schedule.num_train_steps(), 1000);
  EXPECT_TRUE(model->has_features());
  EXPECT_EQ(model->features(x, {1.0}, {}).sizes(), (std::vector<int64_t>{3, 64}));
}

TEST(TorchScriptModel, PerSampleSigmasMatchPerBatchCalls) {
  auto model = open_model(fixture("tiny_eps.pt"));
  torch::Tensor x = torch::randn({2, 1, 8, 8});
  Denoiser d(model);
  torch::Tensor both = d(x, std::vector<double>{0.5, 3.0});
  EXPECT_TRUE(torch::allclose(both[0], d(x, 0.5)[0], 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(both[1], d(x, 3.0)[1], 1e-5, 1e-6));
  EXPECT_EQ(d.nfe(), 3);
}

TEST(TorchScriptModel, EveryPredictionConvertsToTheExactDenoiser) {
  // The Gaussian oracle's D(x, σ) in σ-space vs the wrapper applied to each exact network output.
  auto oracle = make_builtin("builtin:gaussian:shape=6,mean=0.3,std=0.5");
  const std::string vp =
      R"("schedule":{"type":"vp_linear","beta_min":0.1,"beta_max":20},"time_input":"continuous","shape":[6])";
  for (const std::string pred : {"eps", "x0", "v", "score"}) {
    auto path =
        save_module(kGaussianNet, pred, "{\"prediction\":\"" + pred + "\"," + vp + "}", "gauss_" + pred + ".pt");
    auto model = open_model(path);
    for (double sigma : {0.05, 0.7, 4.0, 30.0}) {
      torch::Tensor x = torch::randn({5, 6}, torch::kFloat64) * std::sqrt(0.25 + sigma * sigma) + 0.3;
      torch::Tensor got = Denoiser(model)(x.to(torch::kFloat32), sigma).to(torch::kFloat64);
      torch::Tensor want = Denoiser(oracle)(x, sigma);
      EXPECT_TRUE(torch::allclose(got, want, 1e-4, 1e-4))
          << pred << " sigma=" << sigma << " max diff " << (got - want).abs().max().item<double>();
    }
  }
  auto flow = open_model(save_module(
      kFlowNet, "", R"({"prediction":"flow","schedule":{"type":"flow"},"time_input":"continuous","shape":[6]})",
      "gauss_flow.pt"));
  for (double sigma : {0.05, 0.7, 4.0, 30.0}) {
    torch::Tensor x = torch::randn({5, 6}, torch::kFloat64) * std::sqrt(0.25 + sigma * sigma) + 0.3;
    torch::Tensor got = Denoiser(flow)(x.to(torch::kFloat32), sigma).to(torch::kFloat64);
    EXPECT_TRUE(torch::allclose(got, Denoiser(oracle)(x, sigma), 1e-4, 1e-4)) << "flow sigma=" << sigma;
  }
}

TEST(TorchScriptModel, MetadataOverridesCompleteAModelWithoutMetadata) {
  auto model = open_model(
      fixture("no_meta.pt"), "",
      {"prediction=eps", R"(schedule={"type":"vp_discrete","betas":"linear"})", "time_input=index", "shape=[1,8,8]"});
  EXPECT_EQ(model->metadata().prediction, Prediction::Eps);
  auto edm = open_model(fixture("tiny_eps.pt"), "", {"prediction=x0"});
  EXPECT_EQ(edm->metadata().prediction, Prediction::X0);
  EXPECT_EQ(edm->metadata().shape, (std::vector<int64_t>{1, 8, 8}));
}

TEST(TorchScriptModel, ClassifierFreeGuidanceCombinesConditionalAndUnconditional) {
  auto model = open_model(fixture("cond_x0.pt"));
  torch::Tensor x = torch::randn({2, 1, 8, 8});
  Conditioning cond{torch::tensor({1, 2}, torch::kLong), 3.0};
  torch::Tensor d = Denoiser(model, cond)(x, 1.0);
  // D_c = y/2, D_u = −1 ⇒ D = −1 + 3(y/2 + 1).
  EXPECT_NEAR(d[0].mean().item<double>(), -1 + 3 * 1.5, 1e-6);
  EXPECT_NEAR(d[1].mean().item<double>(), -1 + 3 * 2.0, 1e-6);
  EXPECT_THROW(Denoiser(model, Conditioning{torch::tensor({5}, torch::kLong), 1.0}), Error);
  EXPECT_THROW(Denoiser(open_model(fixture("tiny_eps.pt")), Conditioning{{}, 2.0}), Error);
}

TEST(TorchScriptModel, BadFilesGiveOneClearError) {
  expect_error(fixture("does_not_exist.pt"), "cannot read model file");
  expect_error(fixture("random_bytes.pt"), "not a TorchScript archive");
  expect_error(fixture("truncated.pt"), "could not be loaded as TorchScript");
  expect_error(fixture("no_meta.pt"), "lacks: prediction, schedule, time_input, shape");
  expect_error(fixture("bad_meta_type.pt"), "'shape'");
  expect_error(fixture("bad_meta_value.pt"), "unknown prediction 'epsilon'");
  expect_error(fixture("bad_schedule_field.pt"), "'schedule.beta_start' must be a number");
  expect_error(fixture("bad_meta_json.pt"), "not valid JSON");
  expect_error(fixture("one_input.pt"), "forward takes 1 inputs");
  expect_error(fixture("wrong_shape.pt"), "forward returned shape [2, 2, 8, 8], expected [2, 1, 8, 8]");
  expect_error(fixture("throws.pt"), "deliberate failure inside forward");
  expect_error(fixture("tiny_eps.pt"), "metadata field 'bogus' is unknown", {"bogus=1"});
}

TEST(TorchScriptModel, NonFiniteOutputNamesTheSigma) {
  auto model = open_model(fixture("nan_below.pt"));
  Denoiser d(model);
  torch::Tensor x = torch::randn({2, 1, 8, 8});
  EXPECT_NO_THROW(d(x, 10.0));
  try {
    d(x, 0.05);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("NaN or Inf at sigma=0.05"), std::string::npos) << e.what();
  }
}

TEST(Metadata, ResolveValidatesEveryField) {
  const std::string ok = R"({"prediction":"eps","schedule":{"type":"edm"},"time_input":"sigma","shape":[3,4,4]})";
  EXPECT_NO_THROW(resolve_metadata(ok, "", {}, "m"));
  EXPECT_THROW(resolve_metadata(ok, "", {"time_input=index"}, "m"), Error);  // index needs vp_discrete
  EXPECT_THROW(resolve_metadata(ok, "", {"shape=[0,4]"}, "m"), Error);
  EXPECT_THROW(resolve_metadata(ok, "", {"data_range=[1,-1]"}, "m"), Error);
  EXPECT_THROW(resolve_metadata(ok, "", {"num_classes=-2"}, "m"), Error);
  EXPECT_THROW(resolve_metadata(ok, "", {"schedule.type=vx"}, "m"), Error);
  EXPECT_THROW(resolve_metadata(ok, "", {"schedule.sigma_maxx=3"}, "m"), Error);
  ModelMetadata m = resolve_metadata(ok, R"({"num_classes": 10})", {"schedule.sigma_max=120"}, "m");
  EXPECT_EQ(m.num_classes, 10);
  EXPECT_DOUBLE_EQ(m.schedule.sigma_max(), 120);
}
