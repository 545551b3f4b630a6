// scoreflow estimate-gamma | trajectory | nll — Analytic-DPM (Bao et al. 2022) on a dataset.
#include <cstdio>

#include "cli/common.h"
#include "cli/cond_options.h"
#include "cli/job_flags.h"
#include "io/fsutil.h"
#include "scoreflow/error.h"
#include "scoreflow/gamma_estimation.h"
#include "scoreflow/jobs.h"
#include "scoreflow/latent.h"
#include "scoreflow/nll.h"

namespace scoreflow::cli {
namespace {

struct DataOptions {
  std::string data;
  bool resize = false, skip_bad = false;
  void add(CLI::App& app) {
    app.add_option("--data", data, "dataset: image folder, idx/idx.gz, .npy or .npz")->required();
    app.add_flag("--resize", resize,
                 "resize + centre-crop items to the model's shape where its data_prep does not make them fit");
    app.add_flag("--skip-bad", skip_bad, "skip unreadable files (counted) instead of failing");
  }
  /// The dataset in the model's sample space (a latent model's encoder applied to images).
  std::unique_ptr<io::Dataset> open(std::shared_ptr<const Model> model) const {
    ModelDataOptions o;
    o.resize = resize;
    o.skip_bad = skip_bad;
    return open_model_dataset(data, std::move(model), o);
  }
};

std::unique_ptr<analytic::GammaTable> load_gamma(const std::string& path, const Model& model) {
  if (path.empty()) return nullptr;
  return std::make_unique<analytic::GammaTable>(load_gamma_for(model, path));
}

void register_estimate_gamma(CLI::App& app) {
  auto* sub = app.add_subcommand("estimate-gamma", "estimate Analytic-DPM's Gamma_t = E||eps_hat||^2/d over a dataset");
  static ModelOptions model_opts;
  static DataOptions data_opts;
  static DataCondOptions cond_opts;
  static std::string out, timesteps = "all";
  static int64_t num_images = 1000;
  static int batch = 100;
  static uint64_t seed = 0;
  static bool overwrite = false, as_json = false, forward_only = false;
  static std::string shard_flag, devices_flag;
  model_opts.add(*sub);
  static CLI::Option* device_option = sub->get_option("--device");
  data_opts.add(*sub);
  cond_opts.add(*sub);
  sub->add_option("--shard", shard_flag,
                  "i/n: only shard i of n (whole batches of the images) into OUT's .shard-i-of-n.npz for scoreflow "
                  "merge (default: RANK/WORLD_SIZE, OMPI_COMM_WORLD_*, SLURM_* when set)");
  sub->add_option("--devices", devices_flag,
                  "several devices in one process, e.g. cuda:0,cuda:1 (one model copy each)");
  sub->add_option("--out", out,
                  "Gamma file (JSON); an interrupted run resumes from OUT.parts (or an older version's partial OUT)");
  sub->add_option("--timesteps", timesteps, "all, or K (K evenly spaced timesteps; the rest interpolated)")
      ->capture_default_str();
  sub->add_option("--num-images", num_images, "images (the first ones of --data)")->capture_default_str();
  sub->add_option("--batch", batch, "images per network call")->capture_default_str();
  sub->add_option("--seed", seed, "noise seed")->capture_default_str();
  sub->add_flag("--overwrite", overwrite,
                "start afresh: discard OUT.parts and an existing --out (even with other settings)");
  sub->add_flag("--json", as_json, "print a JSON summary on stdout");
  sub->add_flag("--forward-only", forward_only,
                "benchmark: time only the network calls this run would make (no data, noise or read-back); "
                "prints images/s, writes nothing");
  set_action(sub, [] {
    auto start = std::chrono::steady_clock::now();
    if (out.empty() && !forward_only) fail("--out is required (the Gamma file to write)");
    if (!forward_only) io::check_outputs({{"--out", out}});
    const jobs::Shard shard = resolve_shard_flag(shard_flag);
    const std::vector<std::string> devices = parse_devices(devices_flag);
    if (!devices.empty() && device_option->count() > 0) fail("give --device or --devices, not both");
    const std::vector<std::shared_ptr<const Model>> models = open_on_devices(model_opts, devices);
    const std::shared_ptr<const Model> model = models[0];
    const analytic::DiscreteChain chain = chain_of(*model);
    auto data = data_opts.open(model);
    GammaEstimation job;
    job.num_images = num_images;
    job.batch = batch;
    job.seed = seed;
    job.conditions = cond_opts.resolve(*model, num_images);
    const int64_t n = chain.num_steps();
    if (timesteps == "all") {
      for (int64_t t = 1; t <= n; ++t) job.timesteps.push_back(t);
    } else {
      int64_t k = 0;
      try {
        k = std::stoll(timesteps);
      } catch (const std::exception&) {
        fail("--timesteps '", timesteps, "' is not 'all' or a number");
      }
      if (k < 2 || k > n) fail("--timesteps must be in [2, ", n, "], got ", k);
      job.timesteps = analytic::even_timesteps(n, k);
    }
    if (forward_only) {
      const double rate = forward_throughput(*model, *data, job);
      std::fprintf(stderr, "estimate-gamma --forward-only: %.1f images/s (%zu timesteps x %lld images, batch %d)\n",
                   rate, job.timesteps.size(), static_cast<long long>(num_images), batch);
      if (as_json)
        print_json({{"command", "estimate-gamma"},
                    {"mode", "forward-only"},
                    {"model", model->name()},
                    {"device", model->device().str()},
                    {"timesteps", job.timesteps.size()},
                    {"num_images", num_images},
                    {"batch", batch},
                    {"images_per_second", rate}});
      return;
    }
    analytic::GammaMeta meta = gamma_meta_for(*model);
    meta.dataset = data->describe();
    meta.settings = {{"num_images", std::to_string(num_images)},
                     {"batch", std::to_string(batch)},
                     {"seed", std::to_string(seed)},
                     {"timesteps", timesteps}};
    if (!job.conditions.empty()) meta.settings["conditions"] = job.conditions.fingerprint();
    jobs::GammaJobOptions options;
    options.out = out;
    options.shard = shard;
    options.overwrite = overwrite;
    options.on_note = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
    if (shard.sharded()) io::check_writable(jobs::shard_path(out, shard, ".npz"));
    Progress progress("estimate-gamma", static_cast<int64_t>(job.timesteps.size()), "timesteps");
    options.on_timestep = [&](int64_t done, int64_t, double rate) {
      progress.update(done, std::to_string(static_cast<int64_t>(rate)) + " images/s");
    };
    const jobs::GammaJobResult r = jobs::estimate_gamma_job(models, *data, job, meta, options);
    progress.finish();
    if (r.table && r.table->num_clipped() > 0)
      std::fprintf(stderr, "warning: %lld timesteps had Gamma outside [0, 1] and were clipped\n",
                   static_cast<long long>(r.table->num_clipped()));
    if (!as_json) return;
    nlohmann::json doc = {{"command", "estimate-gamma"},       {"model", model->name()},
                          {"dataset", data->describe()},       {"out", r.path},
                          {"timesteps", job.timesteps.size()}, {"num_images", num_images},
                          {"resumed_timesteps", r.resumed},    {"wall_seconds", seconds_since(start)}};
    if (shard.sharded()) {
      doc["shard"] = shard.to_json();
      doc["image_range"] = {r.image_range.first, r.image_range.second};
    } else {
      doc["clipped"] = r.table->num_clipped();
      doc["device"] = model->device().str();
      doc["batch"] = batch;
      // Steady-state rate: the first timestep computed (network warm-up) left out, as in --forward-only.
      doc["images_per_second"] = r.images_per_second;
    }
    print_json(doc);
  });
}

void register_trajectory(CLI::App& app) {
  auto* sub = app.add_subcommand("trajectory", "print an even/quadratic/optimal K-step trajectory and its cost");
  static ModelOptions model_opts;
  static std::string gamma_path, kind = "optimal";
  static int64_t steps = 10;
  static bool as_json = false;
  model_opts.add(*sub, false);
  sub->add_option("--gamma", gamma_path, "Gamma file from estimate-gamma");
  sub->add_option("--steps", steps, "K, the number of timesteps")->capture_default_str();
  sub->add_option("--trajectory", kind, "even | quadratic | optimal")->capture_default_str();
  sub->add_flag("--json", as_json, "print one JSON document");
  set_action(sub, [] {
    auto model = model_opts.open();
    const analytic::DiscreteChain chain = chain_of(*model);
    auto gamma = load_gamma(gamma_path, *model);
    std::vector<int64_t> traj = make_trajectory(kind, chain, steps, gamma.get());
    nlohmann::json doc = {{"trajectory", kind}, {"steps", steps}, {"timesteps", traj}};
    if (gamma) {
      auto cost = analytic::trajectory_cost(chain, gamma->dense());
      doc["cost"] = analytic::path_cost(cost, traj);
      doc["even_cost"] = analytic::path_cost(cost, analytic::even_timesteps(chain.num_steps(), steps));
    }
    if (as_json) return print_json(doc);
    for (size_t i = 0; i < traj.size(); ++i) std::printf("%s%lld", i ? " " : "", static_cast<long long>(traj[i]));
    std::printf("\n");
    if (gamma) std::printf("cost %.6f (even: %.6f)\n", doc["cost"].get<double>(), doc["even_cost"].get<double>());
  });
}

void register_nll(CLI::App& app) {
  auto* sub = app.add_subcommand("nll", "negative log-likelihood (bits/dim) of a discrete VP model along a trajectory");
  static ModelOptions model_opts;
  static DataOptions data_opts;
  static DataCondOptions cond_opts;
  static std::string gamma_path, kind = "even", variance = "analytic";
  static int64_t steps = 10, num_images = 1000;
  static int batch = 100;
  static uint64_t seed = 0;
  static bool as_json = false, no_clip = false;
  model_opts.add(*sub);
  data_opts.add(*sub);
  cond_opts.add(*sub);
  sub->add_option("--gamma", gamma_path, "Gamma file (needed for --variance analytic and --trajectory optimal)");
  sub->add_option("--steps", steps, "K, the number of timesteps")->capture_default_str();
  sub->add_option("--trajectory", kind, "even | quadratic | optimal")->capture_default_str();
  sub->add_option("--variance", variance, "analytic | ddpm-beta | ddpm-tilde")->capture_default_str();
  sub->add_option("--num-images", num_images, "images (the first ones of --data)")->capture_default_str();
  sub->add_option("--batch", batch, "images per network call")->capture_default_str();
  sub->add_option("--seed", seed, "noise seed")->capture_default_str();
  sub->add_flag("--no-clip-x0", no_clip, "do not clamp x0_hat to the data range");
  sub->add_flag("--json", as_json, "print one JSON document with the per-term breakdown");
  set_action(sub, [] {
    auto start = std::chrono::steady_clock::now();
    auto model = model_opts.open();
    const analytic::DiscreteChain chain = chain_of(*model);
    auto gamma = load_gamma(gamma_path, *model);
    auto data = data_opts.open(model);
    NllJob job;
    job.trajectory = make_trajectory(kind, chain, steps, gamma.get());
    job.variance = analytic::parse_reverse_variance(variance);
    job.num_images = num_images;
    job.batch = batch;
    job.seed = seed;
    job.clip_x0 = !no_clip;
    job.conditions = cond_opts.resolve(*model, num_images);
    Progress progress("nll", num_images, "images");
    NllResult r = compute_nll(*model, *data, gamma.get(), job, [&](int64_t d, int64_t) { progress.update(d); });
    progress.finish();
    if (as_json) {
      print_json({{"command", "nll"},
                  {"model", model->name()},
                  {"dataset", data->describe()},
                  {"trajectory", kind},
                  {"timesteps", job.trajectory},
                  {"variance", variance},
                  {"bits_per_dim", r.bits_per_dim},
                  {"std_err", r.std_err},
                  {"prior", r.prior},
                  {"steps_kl", r.steps},
                  {"decoder", r.decoder},
                  {"per_step", r.per_step},
                  {"step_variances", r.variances},
                  {"num_images", r.count},
                  {"wall_seconds", seconds_since(start)}});
      return;
    }
    std::printf("%.4f +- %.4f bits/dim (prior %.4f, steps %.4f, decoder %.4f; K=%lld %s, %s variance, %lld images)\n",
                r.bits_per_dim, r.std_err, r.prior, r.steps, r.decoder, static_cast<long long>(steps), kind.c_str(),
                variance.c_str(), static_cast<long long>(r.count));
  });
}

}  // namespace

void register_analytic(CLI::App& app) {
  register_estimate_gamma(app);
  register_trajectory(app);
  register_nll(app);
}

}  // namespace scoreflow::cli
