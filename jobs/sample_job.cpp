// A sampling job's σ grid from plain settings (scoreflow/jobs.h): the one choice every sampling
// command makes between explicit σ, a discrete trajectory, an AMED file's own grid and a schedule.
#include <memory>

#include "scoreflow/amed.h"
#include "scoreflow/args.h"
#include "scoreflow/discrete_chain.h"
#include "scoreflow/error.h"
#include "scoreflow/gamma_estimation.h"
#include "scoreflow/gamma_table.h"
#include "scoreflow/jobs.h"
#include "scoreflow/schedule_file.h"
#include "scoreflow/sigmas.h"

namespace scoreflow::jobs {

ChosenGrid choose_grid(const GridChoice& choice, const Model& model, const Sampler& sampler,
                       const std::string& sampler_args, FinalStep final) {
  if (choice.steps != -1 && choice.nfe != -1) fail("give ", Field{"steps"}, " or ", Field{"nfe"}, ", not both");
  if (choice.steps != -1 && (choice.steps < 1 || choice.steps > 100000))
    fail(Field{"steps"}, " must be in [1, 100000], got ", choice.steps);
  if (!choice.trajectory.empty() && !choice.sigmas.empty())
    fail("give ", Field{"trajectory"}, " or ", Field{"sigmas"}, ", not both");
  ChosenGrid grid;
  int steps = choice.steps == -1 ? 0 : choice.steps;
  if (choice.nfe != -1) steps = grid.nfe_steps = sampler.steps_for_nfe(choice.nfe, final);
  if (!choice.trajectory.empty()) {
    std::unique_ptr<GammaTable> gamma;
    if (!choice.gamma.empty()) gamma = std::make_unique<GammaTable>(load_gamma_for(model, choice.gamma));
    grid.sigmas = trajectory_grid(choice.trajectory, chain_of(model), steps ? steps : 10, gamma.get(), final);
    grid.source = "trajectory";
  } else if (!choice.sigmas.empty()) {
    grid.sigmas = explicit_sigmas(choice.sigmas, final);
    if (steps && steps != static_cast<int>(grid.sigmas.size()) - 1)
      fail(Field{"sigmas"}, " gives ", grid.sigmas.size() - 1, " steps but ", Field{"steps"}, "/", Field{"nfe"},
           " asks for ", steps);
    grid.source = "sigmas";
  } else if (!steps && !choice.schedule_given &&
             !(grid.sigmas = amed_trained_sigmas(sampler.name(), sampler_args)).empty()) {
    grid.source = "trained";
  } else {
    try {
      grid.sigmas = resolve_sigmas(choice.schedule, steps, choice.default_steps, model,
                                   KeyValueArgs(choice.schedule_args, "schedule arg"), choice.force, final);
    } catch (const ScheduleMismatch& e) {
      fail(e.what(), " (", Field{"force"}, " uses it anyway)");
    }
    grid.source = "schedule";
  }
  check_final_grid(sampler, grid.sigmas, final);
  return grid;
}

FinalStep choose_final(const std::string& final_name, const Sampler& sampler, const std::string& sampler_args) {
  FinalStep final = sampler.default_final();
  if (!final_name.empty()) {
    try {
      final = parse_final_step(final_name);
    } catch (const Error&) {
      fail(Field{"final"}, ": unknown value '", final_name, "'; valid: zero, none, denoise");
    }
  }
  sampler.check_final(final);
  if (final != FinalStep::Zero && KeyValueArgs(sampler_args).get_bool("denoise_to_zero", false))
    fail(Field{"sampler_args"}, " denoise_to_zero=true is ", Field{"final"}, " denoise on a grid ending in 0; with ",
         Field{"final"}, " ", final_step_name(final), " leave it out");
  return final;
}

}  // namespace scoreflow::jobs
