#include "cli/sampling_flags.h"

#include "cli/common.h"
#include "cli/list_arg.h"
#include "scoreflow/error.h"
#include "scoreflow/registry.h"

namespace scoreflow::cli {

void SamplingFlags::add(CLI::App& app, unsigned parts, const std::string& default_seeds, bool cond_outputs) {
  if (parts & kConditioning) {
    cond.add(app, cond_outputs);
    app.add_option("--guidance", guidance,
                   guidance_help ? guidance_help : "classifier-free guidance weight w (1 = plain conditional)")
        ->capture_default_str();
  }
  if (parts & kSampler) {
    seeds = default_seeds;
    app.add_option("--sampler", sampler, "sampler name (scoreflow list samplers)")->capture_default_str();
    app.add_option("--sampler-args", sampler_args, "sampler options k=v,... (e.g. eta=0.5)");
    app.add_option("--steps", steps,
                   "number of steps (default 20, or the grid an AMED predictor= / table= was trained on)");
    app.add_option("--nfe", nfe, "network-call budget; the sampler works out its steps");
    app.add_option("--seeds", seeds, "seeds: 0-63 or 1,5,9-12 (one sample each)")->capture_default_str();
  }
  if (parts & kGrid) {
    schedule_option_ =
        app.add_option("--schedule", schedule,
                       schedule_help ? schedule_help
                                     : "sigma grid (scoreflow list schedules), or file:PATH.json (a schedule file)")
            ->capture_default_str();
    schedule_args_option_ =
        app.add_option("--schedule-args", schedule_args, "grid options k=v,... (rho, sigma_min, sigma_max, ...)");
    app.add_option("--final", final, final_help ? final_help : kFinalHelp);
    app.add_flag("--force", force, kForceHelp);
  }
  const char* class_help = "class label for every sample, or 'random' (seed mod num_classes)";
  if (!(parts & kSampleOnly)) {
    if (parts & kClass) app.add_option("--class", label, class_help);
    return;
  }
  app.add_option("--trajectory", trajectory,
                 "discrete timesteps even|quadratic|optimal (vp_discrete models; --steps = K)");
  app.add_option("--gamma", gamma, "Gamma file (estimate-gamma) for --trajectory optimal and the analytic samplers");
  app.add_option("--sigmas", sigmas, "explicit descending sigma list, e.g. 80,40,10,1 (0 appended with --final zero)");
  app.add_option("--class", label, class_help);
  app.add_option("--init-noise", init_noise,
                 ".npz with array 'noise' [N, ...shape] replacing the seeded initial noise");
}

bool SamplingFlags::grid_given() const {
  return (schedule_option_ && schedule_option_->count() > 0) ||
         (schedule_args_option_ && schedule_args_option_->count() > 0);
}

SampleJob SamplingFlags::conditioning(const Model& model, std::vector<uint64_t> seeds, bool unconditional,
                                      std::string* note) const {
  SampleJob job;
  job.seeds = std::move(seeds);
  job.guidance = guidance;
  job.labels = class_labels(label, model, job.seeds);
  if (unconditional && cond.cond.empty()) {
    const std::string text = use_unconditional_input(
        model, job, cond.uncond.empty() ? std::map<std::string, torch::Tensor>{} : read_arrays(cond.uncond, "uncond"));
    if (note) *note = text;
  }
  const auto n = static_cast<int64_t>(job.seeds.size());
  cond.apply(model, job, n, 0, n);
  return job;
}

PreparedJob SamplingFlags::build(const Model& model, int batch, const jobs::Shard* shard) const {
  PreparedJob p;
  // --gamma feeds both the optimal trajectory and the Analytic-DPM samplers' gamma= arg.
  p.sampler_args = sampler_args;
  if (!gamma.empty() && (sampler == "analytic_ddpm" || sampler == "analytic_ddim") &&
      p.sampler_args.find("gamma=") == std::string::npos)
    p.sampler_args += (p.sampler_args.empty() ? "gamma=" : ",gamma=") + gamma;
  p.sampler = make_sampler(sampler, p.sampler_args);
  p.final = final_step_for(final, *p.sampler, p.sampler_args);
  p.all_seeds = parse_seeds(seeds);
  const int64_t total = static_cast<int64_t>(p.all_seeds.size());
  p.end = total;
  if (batch < 1) fail("--batch must be >= 1, got ", batch);
  if (shard) std::tie(p.begin, p.end) = jobs::shard_range(total, batch, *shard);

  jobs::GridChoice choice;
  if (!sigmas.empty()) choice.sigmas = parse_double_list(sigmas, "--sigmas");
  choice.trajectory = trajectory;
  choice.gamma = gamma;
  choice.schedule = schedule;
  choice.schedule_args = schedule_args;
  choice.schedule_given = grid_given();
  choice.steps = steps;
  choice.nfe = nfe;
  choice.force = force;
  p.grid = jobs::choose_grid(choice, model, *p.sampler, p.sampler_args, p.final);
  if (nfe != -1)
    p.note = p.sampler->name() + ": --nfe " + std::to_string(nfe) + " -> " + std::to_string(p.grid.nfe_steps) +
             " steps (" + std::to_string(p.sampler->nfe_for(p.grid.nfe_steps, p.final)) + " network calls, --final " +
             final_step_name(p.final) + ")";
  else if (p.grid.source == "trained")
    p.note =
        sampler + ": the " + std::to_string(p.grid.sigmas.size() - 1) + "-step grid its predictor/table was trained on";

  SampleJob& job = p.job;
  job.sigmas = p.grid.sigmas;
  job.final = p.final;
  job.seeds.assign(p.all_seeds.begin() + p.begin, p.all_seeds.begin() + p.end);
  job.batch = batch;
  job.device = model.device();
  job.labels = class_labels(label, model, job.seeds);
  job.guidance = guidance;
  // Conditioning and guidance inputs, checked here before any network call or output.
  cond.apply(model, job, total, p.begin, p.end);
  if (!init_noise.empty())
    job.init_noise = load_init_noise(init_noise, total, model.metadata().shape).narrow(0, p.begin, p.end - p.begin);
  return p;
}

}  // namespace scoreflow::cli
