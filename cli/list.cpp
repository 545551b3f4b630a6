// scoreflow list samplers|schedules|builtins
#include <cstdio>

#include "cli/common.h"
#include "scoreflow/error.h"
#include "scoreflow/registry.h"
#include "scoreflow/sigmas.h"

namespace scoreflow::cli {

void register_list(CLI::App& app) {
  auto* sub = app.add_subcommand("list", "list samplers, schedules (sigma grids) or builtin models");
  static std::string what;
  sub->add_option("what", what, "samplers | schedules | builtins")->required();
  set_action(sub, [] {
    auto row = [](const std::string& name, const std::string& summary) {
      std::printf("%-16s %s\n", name.c_str(), summary.c_str());
    };
    if (what == "samplers") {
      for (const SamplerInfo& s : sampler_table()) row(s.name, s.summary);
    } else if (what == "schedules") {
      for (const GridInfo& g : grid_names()) row(g.name, g.summary);
      std::printf("\nnoise schedules (model metadata 'schedule.type'):\n");
      row("vp_discrete",
          "discrete VP chain: betas linear | scaled_linear | cosine | [list], num_train_steps, "
          "rescale_zero_terminal_snr");
      row("vp_linear", "continuous VP, linear beta(t): beta_min, beta_max, t_eps");
      row("ve", "variance exploding: sigma_min, sigma_max");
      row("edm", "Karras et al. 2022: sigma_min, sigma_max, sigma_data");
      row("flow", "rectified flow x_t = (1-t) x0 + t eps: t_min, t_max");
    } else if (what == "builtins") {
      for (const auto& [name, summary] : builtin_models()) row("builtin:" + name, summary);
    } else {
      fail("unknown list '", what, "'; valid: samplers, schedules, builtins");
    }
  });
}

}  // namespace scoreflow::cli
