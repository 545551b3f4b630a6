// Library field -> command-line flag, for error messages (docs/design.md §7).
#include "cli/error_flags.h"

#include <algorithm>
#include <map>
#include <string>

namespace scoreflow::cli {

std::string flag_for_field(const std::string& field) {
  // Fields are the members of the library's job and option structs; flags are this CLI's names. Most
  // flags are their field's name with '-' for '_'; the others are listed.
  static const std::string same =  // space-separated, with a space at both ends
      " M ball batch coeff cond cond_rows cpu_module cpu_teams data data_range decode_batch decoder device devices "
      " dtype features final force forward_only gamma guidance guidance_interval guidance_rescale "
      " init_noise iterations kid log lr meta meta_file method metric nfe num_images num_trajectories "
      " ode_steps optimize_max_batch out_dir overwrite ref ref_data repeat restarts sampler sampler_args samplers "
      " save_stats scale_dir scale_time schedule schedule_args schedules seeds shard shift_lr sigmas "
      " steps student table teacher timesteps train_batch trajectory uncond validate validate_every "
      " variance ";
  static const std::map<std::string, std::string> renamed = {{"label", "--class"},
                                                             {"lipschitz_points", "--points"},
                                                             {"model_samples", "--model"},
                                                             {"outputs.grid", "--out"},
                                                             {"outputs.npz", "--npz"},
                                                             {"outputs.png_dir", "--out-dir"},
                                                             {"outputs.result_only", "--json"},
                                                             {"samples_path", "--samples"},
                                                             {"teacher_batch", "--batch"},
                                                             {"train_samples", "--warmup"},
                                                             {"valid_samples", "--valid"}};
  if (auto it = renamed.find(field); it != renamed.end()) return it->second;
  if (field.empty() || field.find(' ') != std::string::npos || same.find(" " + field + " ") == std::string::npos)
    return {};
  std::string flag = "--" + field;
  std::replace(flag.begin(), flag.end(), '_', '-');
  return flag;
}

std::string flag_message(const Error& e) { return e.spelled(flag_for_field); }

}  // namespace scoreflow::cli
