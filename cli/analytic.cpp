// scoreflow estimate-gamma — Analytic-DPM (Bao et al. 2022): Γ over a dataset; trajectory and nll are in
// cli/analytic_nll.cpp. The run is the library's (jobs::estimate_gamma_job); this reads flags.
#include "cli/analytic.h"

#include <cstdio>

#include "cli/common.h"
#include "cli/cond_options.h"
#include "cli/job_flags.h"
#include "io/fsutil.h"
#include "scoreflow/error.h"
#include "scoreflow/gamma_estimation.h"
#include "scoreflow/jobs.h"
#include "scoreflow/jobs/analytic.h"
#include "scoreflow/latent.h"
#include "scoreflow/nll.h"

namespace scoreflow::cli {
namespace {

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
    job.timesteps = jobs::gamma_timesteps(chain, timesteps);
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
    const analytic::GammaMeta meta = jobs::gamma_job_meta(*model, *data, job, timesteps);
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

}  // namespace

void register_analytic(CLI::App& app) {
  register_estimate_gamma(app);
  register_trajectory(app);
  register_nll(app);
}

}  // namespace scoreflow::cli
