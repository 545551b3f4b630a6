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

namespace scoreflow::cli {
namespace {

void register_estimate_gamma(CLI::App& app) {
  auto* sub = app.add_subcommand("estimate-gamma", "estimate Analytic-DPM's Gamma_t = E||eps_hat||^2/d over a dataset");
  static ModelOptions model_opts;
  static DataOptions data_opts;
  static DataCondOptions cond_opts;
  static std::string timesteps = "all";
  static GammaEstimation job;            // --num-images, --batch, --seed
  static jobs::GammaJobOptions options;  // --out, --overwrite
  static bool as_json = false, forward_only = false;
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
  sub->add_option("--out", options.out,
                  "Gamma file (JSON); an interrupted run resumes from OUT.parts (or an older version's partial OUT)");
  sub->add_option("--timesteps", timesteps, "all, or K (K evenly spaced timesteps; the rest interpolated)")
      ->capture_default_str();
  sub->add_option("--num-images", job.num_images, "images (the first ones of --data)")->capture_default_str();
  sub->add_option("--batch", job.batch, "images per network call")->capture_default_str();
  sub->add_option("--seed", job.seed, "noise seed")->capture_default_str();
  sub->add_flag("--overwrite", options.overwrite,
                "start afresh: discard OUT.parts and an existing --out (even with other settings)");
  sub->add_flag("--json", as_json, "print a JSON summary on stdout");
  sub->add_flag("--forward-only", forward_only,
                "benchmark: time only the network calls this run would make (no data, noise or read-back); "
                "prints images/s, writes nothing");
  set_action(sub, [] {
    auto start = std::chrono::steady_clock::now();
    const std::string& out = options.out;
    if (out.empty() && !forward_only) fail("--out is required (the Gamma file to write)");
    if (!forward_only) io::check_outputs({{"--out", out}});
    options.shard = resolve_shard_flag(shard_flag);
    const std::vector<std::string> devices = parse_devices(devices_flag);
    if (!devices.empty() && device_option->count() > 0) fail("give --device or --devices, not both");
    const std::vector<std::shared_ptr<const Model>> models = open_on_devices(model_opts, devices);
    const std::shared_ptr<const Model> model = models[0];
    const DiscreteChain chain = chain_of(*model);
    auto data = data_opts.open(model);
    job.conditions = cond_opts.resolve(*model, job.num_images);
    job.timesteps = jobs::gamma_timesteps(chain, timesteps);
    if (forward_only) {
      const double rate = forward_throughput(*model, *data, job);
      std::fprintf(stderr, "estimate-gamma --forward-only: %.1f images/s (%zu timesteps x %lld images, batch %d)\n",
                   rate, job.timesteps.size(), static_cast<long long>(job.num_images), job.batch);
      if (as_json) print_json(jobs::gamma_forward_report(*model, job, rate));
      return;
    }
    const GammaMeta meta = jobs::gamma_job_meta(*model, *data, job, timesteps);
    options.on_note = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
    if (options.shard.sharded()) io::check_writable(jobs::shard_path(out, options.shard, ".npz"));
    Progress progress("estimate-gamma", static_cast<int64_t>(job.timesteps.size()), "timesteps");
    options.on_timestep = [&](int64_t done, int64_t, double rate) {
      progress.update(done, std::to_string(static_cast<int64_t>(rate)) + " images/s");
    };
    const jobs::GammaJobResult r = jobs::estimate_gamma_job(models, *data, job, meta, options);
    progress.finish();
    options.on_timestep = nullptr;  // `progress` ends here; the options are static
    if (r.table && r.table->num_clipped() > 0)
      std::fprintf(stderr, "warning: %lld timesteps had Gamma outside [0, 1] and were clipped\n",
                   static_cast<long long>(r.table->num_clipped()));
    if (!as_json) return;
    nlohmann::json doc = jobs::gamma_report(*model, *data, job, options, r);
    doc["wall_seconds"] = seconds_since(start);
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
