#include "cli/sampling_flags.h"

#include "cli/common.h"
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

jobs::SamplingChoice SamplingFlags::choice() const {
  jobs::SamplingChoice c;
  c.sampler = sampler, c.sampler_args = sampler_args, c.final = final, c.seeds = seeds;
  c.label = label, c.init_noise = init_noise, c.guidance = guidance, c.cond = cond;
  if (!sigmas.empty()) c.grid.sigmas = parse_double_list(sigmas, "--sigmas");
  c.grid.trajectory = trajectory, c.grid.gamma = gamma, c.grid.schedule = schedule;
  c.grid.schedule_args = schedule_args, c.grid.schedule_given = grid_given();
  c.grid.steps = steps, c.grid.nfe = nfe, c.grid.force = force;
  return c;
}

SampleJob SamplingFlags::conditioning(const Model& model, std::vector<uint64_t> seeds, bool unconditional,
                                      std::string* note) const {
  if (cond.decode_batch < 1) fail(Field{"decode_batch"}, " must be >= 1, got ", cond.decode_batch);
  return jobs::prepare_conditioning(choice(), model, std::move(seeds), unconditional, note);
}

PreparedJob SamplingFlags::build(const Model& model, int batch, const jobs::Shard* shard) const {
  if (cond.decode_batch < 1) fail(Field{"decode_batch"}, " must be >= 1, got ", cond.decode_batch);
  PreparedJob p;
  static_cast<jobs::PreparedSampleJob&>(p) = jobs::prepare_sample_job(choice(), model, batch, shard);
  if (nfe != -1)
    p.note = p.sampler->name() + ": --nfe " + std::to_string(nfe) + " -> " + std::to_string(p.grid.nfe_steps) +
             " steps (" + std::to_string(p.sampler->nfe_for(p.grid.nfe_steps, p.final)) + " network calls, --final " +
             final_step_name(p.final) + ")";
  else if (p.grid.source == "trained")
    p.note =
        sampler + ": the " + std::to_string(p.grid.sigmas.size() - 1) + "-step grid its predictor/table was trained on";
  return p;
}

}  // namespace scoreflow::cli
