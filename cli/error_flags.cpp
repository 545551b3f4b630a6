// Library field -> command-line flag, for error messages (docs/design.md §7).
#include "cli/error_flags.h"

#include <map>

namespace scoreflow::cli {

std::string flag_for_field(const std::string& field) {
  // Fields are the members of the library's job and option structs; flags are this CLI's names.
  static const std::map<std::string, std::string> flags = {
      {"M", "--M"},
      {"ball", "--ball"},
      {"batch", "--batch"},
      {"coeff", "--coeff"},
      {"cond", "--cond"},
      {"cond_rows", "--cond-rows"},
      {"data", "--data"},
      {"data_range", "--data-range"},
      {"decode_batch", "--decode-batch"},
      {"decoder", "--decoder"},
      {"device", "--device"},
      {"devices", "--devices"},
      {"dtype", "--dtype"},
      {"features", "--features"},
      {"final", "--final"},
      {"force", "--force"},
      {"forward_only", "--forward-only"},
      {"gamma", "--gamma"},
      {"guidance", "--guidance"},
      {"guidance_interval", "--guidance-interval"},
      {"guidance_rescale", "--guidance-rescale"},
      {"init_noise", "--init-noise"},
      {"iterations", "--iterations"},
      {"kid", "--kid"},
      {"label", "--class"},
      {"lipschitz_points", "--points"},
      {"log", "--log"},
      {"lr", "--lr"},
      {"meta", "--meta"},
      {"meta_file", "--meta-file"},
      {"method", "--method"},
      {"metric", "--metric"},
      {"model_samples", "--model"},
      {"nfe", "--nfe"},
      {"num_images", "--num-images"},
      {"num_trajectories", "--num-trajectories"},
      {"ode_steps", "--ode-steps"},
      {"out_dir", "--out-dir"},
      {"outputs.grid", "--out"},
      {"outputs.npz", "--npz"},
      {"outputs.png_dir", "--out-dir"},
      {"outputs.result_only", "--json"},
      {"overwrite", "--overwrite"},
      {"ref", "--ref"},
      {"ref_data", "--ref-data"},
      {"repeat", "--repeat"},
      {"restarts", "--restarts"},
      {"sampler", "--sampler"},
      {"sampler_args", "--sampler-args"},
      {"samplers", "--samplers"},
      {"samples_path", "--samples"},
      {"save_stats", "--save-stats"},
      {"scale_dir", "--scale-dir"},
      {"scale_time", "--scale-time"},
      {"schedule", "--schedule"},
      {"schedule_args", "--schedule-args"},
      {"schedules", "--schedules"},
      {"seeds", "--seeds"},
      {"shard", "--shard"},
      {"shift_lr", "--shift-lr"},
      {"sigmas", "--sigmas"},
      {"steps", "--steps"},
      {"student", "--student"},
      {"table", "--table"},
      {"teacher", "--teacher"},
      {"teacher_batch", "--batch"},
      {"timesteps", "--timesteps"},
      {"train_batch", "--train-batch"},
      {"train_samples", "--warmup"},
      {"trajectory", "--trajectory"},
      {"uncond", "--uncond"},
      {"valid_samples", "--valid"},
      {"validate", "--validate"},
      {"validate_every", "--validate-every"},
      {"variance", "--variance"},
  };
  auto it = flags.find(field);
  return it == flags.end() ? std::string() : it->second;
}

std::string flag_message(const Error& e) { return e.spelled(flag_for_field); }

}  // namespace scoreflow::cli
