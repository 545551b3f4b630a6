// scripts/export_{diffusers,edm,guided}.py on their randomly initialised stand-ins: the exported
// file loads here (LibTorch), `info` and `sample` accept it, and scoreflow's D(x, sigma) from the
// file and its metadata equals the D each script computed from the original module in that
// library's own conventions (written to --ref). Metadata that disagrees with the architecture
// fails the script's self-check with one error line naming the field, leaving no file.
#include <gtest/gtest.h>
#include <torch/script.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "scoreflow/model.h"
#include "scoreflow/npy.h"
#include "tests/support/cli_run.h"

namespace fs = std::filesystem;
using namespace scoreflow;
using testing_cli::tmp;

namespace {

const std::string kScripts = std::string(SCOREFLOW_SOURCE_DIR) + "/scripts/";

/// Runs /usr/bin/python3 scripts/SCRIPT ARGS; exit code, stdout, stderr.
testing_cli::Result python(const std::string& script, const std::string& args, const std::string& env = "") {
  static int counter = 0;
  const std::string base = tmp("export_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
  const std::string cmd =
      env + " /usr/bin/python3 " + kScripts + script + " " + args + " >" + base + ".out 2>" + base + ".err";
  int status = std::system(cmd.c_str());
  testing_cli::Result r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  r.out = testing_cli::slurp(base + ".out");
  r.err = testing_cli::slurp(base + ".err");
  return r;
}

void write_file(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

/// Exports with --ref and returns the model path; fails the test when the script fails.
std::string export_ok(const std::string& script, const std::string& name, const std::string& args,
                      const std::string& env = "") {
  const std::string out = tmp(name + ".pt");
  testing_cli::Result r = python(script, args + " --out " + out + " --ref " + tmp(name + "_ref.npz"), env);
  EXPECT_EQ(r.code, 0) << script << " " << args << "\nstderr: " << r.err;
  EXPECT_NE(r.out.find("self-check passed"), std::string::npos) << r.out;
  return out;
}

/// scoreflow's D(x, sigma_b, labels) of the exported file vs the script's reference D.
void expect_denoiser_matches_reference(const std::string& name) {
  auto model = open_model(tmp(name + ".pt"));
  auto ref = io::read_npz(tmp(name + "_ref.npz"));
  torch::Tensor x = io::to_tensor(ref.at("x")).to(torch::kFloat32);
  torch::Tensor sigma_t = io::to_tensor(ref.at("sigma")).to(torch::kFloat64);
  std::vector<double> sigma(sigma_t.data_ptr<double>(), sigma_t.data_ptr<double>() + sigma_t.numel());
  torch::Tensor labels = ref.count("labels") ? io::to_tensor(ref.at("labels")).to(torch::kLong) : torch::Tensor();
  ASSERT_EQ(static_cast<int64_t>(sigma.size()), x.size(0));
  ASSERT_EQ(labels.defined(), model->metadata().num_classes > 0);
  torch::NoGradGuard no_grad;
  torch::Tensor d = model->denoise(x, sigma, labels).to(torch::kFloat64);
  torch::Tensor want = io::to_tensor(ref.at("denoised")).to(torch::kFloat64);
  ASSERT_EQ(d.sizes(), want.sizes());
  const double scale = std::max(1.0, want.abs().max().item<double>());
  EXPECT_LT((d - want).abs().max().item<double>(), 2e-4 * scale) << name;
  // The three reference sigmas span the range: a constant or sigma-blind D could not pass.
  EXPECT_GT(*std::max_element(sigma.begin(), sigma.end()) / *std::min_element(sigma.begin(), sigma.end()), 10.0);
}

/// `info --json` succeeds and reports these fields; `sample` writes finite samples of the shape.
nlohmann::json info_and_sample(const std::string& name, const std::string& sample_extra = "") {
  const std::string model = tmp(name + ".pt");
  testing_cli::Result info = testing_cli::run("info --model " + model + " --json");
  EXPECT_EQ(info.code, 0) << info.err;
  nlohmann::json doc = nlohmann::json::parse(info.out.empty() ? "{}" : info.out);
  const std::string npz = tmp(name + "_samples.npz");
  fs::remove(npz);
  testing_cli::Result s = testing_cli::run("sample --model " + model + " --sampler heun --steps 3 --seeds 0-2 --npz " +
                                           npz + " " + sample_extra);
  EXPECT_EQ(s.code, 0) << s.err;
  if (fs::exists(npz)) {
    torch::Tensor samples = io::to_tensor(io::read_npz(npz).at("samples"));
    EXPECT_EQ(samples.size(0), 3);
    EXPECT_TRUE(torch::isfinite(samples).all().item<bool>());
  } else {
    ADD_FAILURE() << "sample wrote no " << npz;
  }
  return doc;
}

/// One stderr line `error: ...` containing `needle`, non-zero exit, no output file.
void expect_export_refused(const std::string& script, const std::string& args, const std::string& needle) {
  const std::string out = tmp("refused.pt");
  fs::remove(out);
  testing_cli::Result r = python(script, args + " --out " + out);
  EXPECT_NE(r.code, 0) << args;
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << args << "\nstderr: " << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "exactly one line: " << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << args << "\nstderr: " << r.err;
  EXPECT_FALSE(fs::exists(out)) << out << " left behind";
  EXPECT_FALSE(fs::exists(out + ".tmp")) << out << ".tmp left behind";
}

}  // namespace

TEST(ExportScripts, DiffusersEpsilonLinear) {
  const std::string cfg = tmp("ddpm_scheduler.json");
  write_file(cfg, R"({"_class_name": "DDPMScheduler", "beta_schedule": "linear", "beta_start": 0.0001,
    "beta_end": 0.02, "num_train_timesteps": 1000, "prediction_type": "epsilon", "timestep_spacing": "leading"})");
  export_ok("export_diffusers.py", "diffusers_eps", "--random-init --scheduler-config " + cfg);
  expect_denoiser_matches_reference("diffusers_eps");
  nlohmann::json info = info_and_sample("diffusers_eps");
  EXPECT_EQ(info["prediction"], "eps");
  EXPECT_EQ(info["time_input"], "index");
  EXPECT_EQ(info["shape"], nlohmann::json::array({3, 16, 16}));
  EXPECT_NE(info["schedule"].get<std::string>().find("linear, 0.0001..0.02, N=1000"), std::string::npos)
      << info["schedule"];
  EXPECT_NE(info["metadata"]["description"].get<std::string>().find("timestep_spacing=leading"), std::string::npos);
}

TEST(ExportScripts, DiffusersVPredictionCosineZeroSnrClassesLearnedVariance) {
  const std::string cfg = tmp("ddim_scheduler.json");
  write_file(cfg, R"({"_class_name": "DDIMScheduler", "beta_schedule": "squaredcos_cap_v2", "num_train_timesteps": 1000,
    "prediction_type": "v_prediction", "variance_type": "learned_range", "rescale_betas_zero_snr": true})");
  export_ok("export_diffusers.py", "diffusers_v",
            "--random-init --scheduler-config " + cfg + " --stand-in-classes 3 --in-channels 1 --sample-size 8");
  expect_denoiser_matches_reference("diffusers_v");
  nlohmann::json info = info_and_sample("diffusers_v", "--class 2");
  EXPECT_EQ(info["prediction"], "v");
  EXPECT_EQ(info["num_classes"], 3);
  EXPECT_NE(info["schedule"].get<std::string>().find("cosine"), std::string::npos);
  EXPECT_NE(info["schedule"].get<std::string>().find("zero_terminal_snr"), std::string::npos);
}

TEST(ExportScripts, DiffusersPipelineFolderThroughFromPretrained) {
  // A pipeline folder (unet/config.json, scheduler/scheduler_config.json) read through a stand-in
  // `diffusers` package: UNet2DModel.from_pretrained builds the script's stand-in from config.json,
  // DDPMScheduler.from_config gives diffusers' float32 alphas_cumprod for the script's cross-check.
  const std::string pipe = tmp("pipeline"), fake = tmp("fake_diffusers");
  fs::create_directories(pipe + "/unet");
  fs::create_directories(pipe + "/scheduler");
  fs::create_directories(fake + "/diffusers");
  write_file(pipe + "/unet/config.json", R"({"_class_name": "UNet2DModel", "sample_size": 8, "in_channels": 1,
    "out_channels": 1, "num_class_embeds": 5})");
  write_file(pipe + "/scheduler/scheduler_config.json",
             R"({"_class_name": "DDPMScheduler", "beta_schedule": "scaled_linear",
    "beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000, "prediction_type": "sample"})");
  write_file(fake + "/diffusers/__init__.py", "import json, sys, types, torch\nsys.path.insert(0, '" + kScripts + R"(')
from export_diffusers import StandInUNet2DModel


class UNet2DModel:
    @staticmethod
    def from_pretrained(folder):
        c = json.load(open(folder + '/config.json'))
        torch.manual_seed(0)
        return StandInUNet2DModel(c['sample_size'], c['in_channels'], c['out_channels'], c['num_class_embeds'])


class DDPMScheduler:
    @staticmethod
    def from_config(c):
        n = c['num_train_timesteps']
        betas = torch.linspace(c['beta_start'] ** 0.5, c['beta_end'] ** 0.5, n, dtype=torch.float32) ** 2
        return types.SimpleNamespace(alphas_cumprod=torch.cumprod(1 - betas, 0))
)");
  export_ok("export_diffusers.py", "diffusers_pipe", "--unet " + pipe + "/unet --null-class", "PYTHONPATH=" + fake);
  expect_denoiser_matches_reference("diffusers_pipe");
  auto model = open_model(tmp("diffusers_pipe.pt"));
  EXPECT_EQ(model->metadata().prediction, Prediction::X0);
  EXPECT_EQ(model->metadata().num_classes, 4);  // the fifth embedding is the null class
  EXPECT_NE(model->metadata().schedule.describe().find("scaled_linear, 0.00085..0.012, N=1000"), std::string::npos)
      << model->metadata().schedule.describe();
  // The same folder without the package: refused, naming what is missing.
  expect_export_refused("export_diffusers.py", "--unet " + pipe + "/unet", "needs the diffusers package");
}

TEST(ExportScripts, DiffusersRefusesMissingInputsAndDisagreeingMetadata) {
  const std::string eps = tmp("refuse_eps.json"), learned = tmp("refuse_learned.json"), bad = tmp("refuse_bad.json");
  write_file(eps, R"({"beta_schedule": "linear", "prediction_type": "epsilon"})");
  write_file(learned, R"({"beta_schedule": "linear", "prediction_type": "epsilon", "variance_type": "learned_range"})");
  write_file(bad, R"({"beta_schedule": "linear", "prediction_type": "flow_matching"})");
  expect_export_refused("export_diffusers.py", "--random-init", "--scheduler-config FILE is required");
  expect_export_refused("export_diffusers.py", "--scheduler-config " + eps, "--unet DIR is required");
  expect_export_refused("export_diffusers.py", "--random-init --scheduler-config " + bad,
                        "prediction_type 'flow_matching'");
  // Metadata vs architecture: classes the network ignores, channels it does not take, a learned-
  // variance config on a network with C outputs.
  expect_export_refused("export_diffusers.py", "--random-init --scheduler-config " + eps + " --num-classes 4",
                        "self-check failed: num_classes");
  expect_export_refused("export_diffusers.py", "--random-init --scheduler-config " + eps + " --shape 1,16,16",
                        "self-check failed: shape");
  expect_export_refused("export_diffusers.py",
                        "--random-init --scheduler-config " + learned + " --stand-in-variance fixed_small",
                        "self-check failed: out_channels vs variance_type learned_range");
}

TEST(ExportScripts, EdmVpVePreconditioningsMatchTheOriginalNetwork) {
  for (const std::string precond : {"edm", "vp", "ve"}) {
    const std::string name = "edm_" + precond;
    export_ok("export_edm.py", name,
              "--random-init --precond " + precond + " --label-dim 3 --img-channels 1 --img-resolution 8");
    expect_denoiser_matches_reference(name);
  }
  nlohmann::json info = info_and_sample("edm_edm", "--class 1");
  EXPECT_EQ(info["prediction"], "x0");
  EXPECT_EQ(info["time_input"], "sigma");
  EXPECT_EQ(info["num_classes"], 3);
  EXPECT_NE(info["schedule"].get<std::string>().find("edm(sigma_min=0.002, sigma_max=80, sigma_data=0.5)"),
            std::string::npos)
      << info["schedule"];
  // Classifier-free guidance asks for label num_classes: EDM's all-zero class vector.
  testing_cli::Result cfg =
      testing_cli::run("sample --model " + tmp("edm_edm.pt") +
                       " --sampler euler --steps 3 --seeds 0-1 --class 0 --guidance 2 --npz " + tmp("edm_cfg.npz"));
  EXPECT_EQ(cfg.code, 0) << cfg.err;
  // VPPrecond's range: sigma(epsilon_t = 1e-5) .. sigma(1) of the VP SDE with beta_d 19.9, beta_min 0.1.
  auto vp = open_model(tmp("edm_vp.pt"));
  EXPECT_NEAR(vp->metadata().schedule.sigma_max(), std::sqrt(std::expm1(0.5 * 19.9 + 0.1)), 1e-9);
  EXPECT_NEAR(vp->metadata().schedule.sigma_min(), std::sqrt(std::expm1(0.5 * 19.9 * 1e-10 + 0.1 * 1e-5)), 1e-12);
  EXPECT_EQ(open_model(tmp("edm_ve.pt"))->metadata().schedule.type(), ScheduleType::Ve);
}

TEST(ExportScripts, EdmFromModuleStateDictAndPickle) {
  const std::string sd = tmp("edm_weights.pt"), pkl = tmp("edm_snapshot.pkl");
  export_ok("export_edm.py", "edm_seed7", "--random-init --seed 7 --img-resolution 8 --save-state-dict " + sd);
  // The same weights through a user-style module path, and through an EDM-style snapshot pickle.
  export_ok("export_edm.py", "edm_module",
            "--module export_edm:EDMPrecond --code-dir " + kScripts +
                R"( --kwargs '{"img_resolution": 8, "img_channels": 3}' --state-dict )" + sd);
  expect_denoiser_matches_reference("edm_module");
  const std::string make_pickle = "/usr/bin/python3 -c \"import sys, pickle, torch; sys.path.insert(0, '" + kScripts +
                                  "'); import export_edm as e; n = e.EDMPrecond(8, 3); n.load_state_dict(torch.load('" +
                                  sd + "')); pickle.dump({'ema': n}, open('" + pkl + "', 'wb'))\"";
  ASSERT_EQ(std::system(make_pickle.c_str()), 0);
  export_ok("export_edm.py", "edm_pickle", "--pickle " + pkl + " --code-dir " + kScripts);
  expect_denoiser_matches_reference("edm_pickle");
  // All three hold the same network: identical D on the same inputs.
  auto ref = io::read_npz(tmp("edm_seed7_ref.npz"));
  auto other = io::read_npz(tmp("edm_pickle_ref.npz"));
  EXPECT_TRUE(torch::allclose(io::to_tensor(ref.at("denoised")), io::to_tensor(other.at("denoised")), 1e-6, 1e-6));
}

TEST(ExportScripts, EdmRefusesMissingInputsAndDisagreeingMetadata) {
  const std::string sd = tmp("edm_weights_1ch.pt");
  ASSERT_EQ(python("export_edm.py", "--random-init --img-channels 1 --img-resolution 8 --save-state-dict " + sd +
                                        " --out " + tmp("edm_1ch.pt"))
                .code,
            0);
  expect_export_refused("export_edm.py", "", "give the network");
  expect_export_refused("export_edm.py", "--pickle " + tmp("no_such.pkl"), "does not exist");
  expect_export_refused("export_edm.py", "--module no_such_package.net:EDMPrecond --state-dict " + sd, "cannot import");
  expect_export_refused("export_edm.py", "--state-dict " + sd + " --img-channels 3 --img-resolution 8",
                        "do not fit the architecture");
  expect_export_refused("export_edm.py", "--random-init --img-resolution 8 --num-classes 5",
                        "self-check failed: num_classes");
  expect_export_refused("export_edm.py", "--random-init --img-resolution 8 --shape 1,8,8", "self-check failed: shape");
}

TEST(ExportScripts, GuidedLearnedSigmaCosineRescaledTimestepsClassConditional) {
  export_ok("export_guided.py", "guided",
            "--random-init --stand-in-channels 1 --image_size 8 --learn_sigma True --class_cond True --num_classes 4 "
            "--noise_schedule cosine --diffusion_steps 4000 --rescale_timesteps True --timestep_respacing 100 "
            "--variance-method");
  expect_denoiser_matches_reference("guided");
  nlohmann::json info = info_and_sample("guided", "--class random");
  EXPECT_EQ(info["prediction"], "eps");
  EXPECT_EQ(info["num_classes"], 4);
  EXPECT_NE(info["schedule"].get<std::string>().find("cosine, N=4000"), std::string::npos) << info["schedule"];
  // forward gives eps (C channels); the learned-variance channels live in variance().
  torch::jit::Module m = torch::jit::load(tmp("guided.pt"));
  ASSERT_TRUE(m.find_method("variance").has_value());
  torch::Tensor x = torch::randn({2, 1, 8, 8}), t = torch::full({2}, 123.0), y = torch::tensor({0, 3}, torch::kLong);
  EXPECT_EQ(m.forward({x, t, y}).toTensor().sizes(), (std::vector<int64_t>{2, 1, 8, 8}));
  EXPECT_EQ(m.get_method("variance")({x, t, y}).toTensor().sizes(), (std::vector<int64_t>{2, 1, 8, 8}));
}

TEST(ExportScripts, GuidedLinearUnconditional) {
  export_ok("export_guided.py", "guided_linear", "--random-init --image_size 8 --diffusion_steps 500");
  expect_denoiser_matches_reference("guided_linear");
  // improved-diffusion scales the linear betas by 1000/N.
  auto model = open_model(tmp("guided_linear.pt"));
  EXPECT_NE(model->metadata().schedule.describe().find("linear, 0.0002..0.04, N=500"), std::string::npos)
      << model->metadata().schedule.describe();
}

TEST(ExportScripts, GuidedRefusesMissingInputsAndDisagreeingMetadata) {
  expect_export_refused("export_guided.py", "", "--package guided_diffusion|improved_diffusion and --checkpoint");
  expect_export_refused("export_guided.py", "--random-init --image_size 8 --bogus 3", "unknown option(s) --bogus");
  expect_export_refused("export_guided.py", "--random-init --image_size 8 --noise_schedule sqrt",
                        "noise_schedule 'sqrt'");
  expect_export_refused("export_guided.py", "--random-init --image_size 8 --stand-in-learned-sigma true",
                        "self-check failed: learn_sigma False: the network outputs 6 channels");
  expect_export_refused("export_guided.py", "--random-init --image_size 8 --shape 1,8,8", "self-check failed: shape");
  // A failed export leaves an existing file alone (the archive is checked under a temporary name).
  const std::string existing = tmp("existing.pt");
  write_file(existing, "an earlier export\n");
  EXPECT_NE(python("export_guided.py", "--random-init --image_size 8 --shape 1,8,8 --out " + existing).code, 0);
  std::ifstream in(existing);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "an earlier export\n");
  expect_export_refused("export_guided.py", "--random-init --image_size 8 --shape 3,16,16",
                        "self-check failed: shape: metadata shape [3, 16, 16] but the network's image_size is 8");
}
