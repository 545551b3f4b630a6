#include "cli/cond_options.h"

#include <cstdio>

#include "scoreflow/error.h"

namespace scoreflow::cli {

void CondOptions::add(CLI::App& app, bool outputs) {
  app.add_option("--cond", cond,
                 ".npz with one array per metadata condition, shape [P, ...shape] (P = 1: shared by every sample)");
  app.add_option("--cond-rows", cond_rows,
                 "row of the --cond arrays per seed, e.g. 0,0,1,2 or 0-3 (one per seed, or one for all); "
                 "default: seed index mod P");
  app.add_option("--uncond", uncond,
                 ".npz of unconditional values for guidance, same names (1 row, or P rows: negative prompts); "
                 "default: the metadata's uncond");
  app.add_option("--guidance-interval", interval,
                 "lo,hi: apply guidance only for sigma in [lo, hi] (else conditional D)");
  app.add_option("--guidance-rescale", rescale, "phi in [0, 1]: rescale the guided noise prediction (Lin et al. 2024)")
      ->capture_default_str();
  if (!outputs) return;
  app.add_option("--decoder", decoder, "separate TorchScript decoder archive (its scoreflow.json has \"decoder\")");
  app.add_option("--decode-batch", decode_batch, "latents per decoder call (latent models)")->capture_default_str();
}

void DataCondOptions::add(CLI::App& app) {
  app.add_option("--cond", cond,
                 "conditional models: .npz with one array per metadata condition, 1 row (every item) or one row "
                 "per dataset item used (item i uses row i); default: the model's unconditional input");
  app.add_option("--uncond", uncond,
                 "conditional models: .npz of the unconditional input to use instead of the metadata's uncond");
}

ItemConditions DataCondOptions::resolve(const Model& model, int64_t items) const {
  ItemConditions c = item_conditions_from_files(model, items, cond, uncond);
  if (!c.empty()) std::fprintf(stderr, "note: %s\n", c.note(model).c_str());
  return c;
}

std::map<std::string, torch::Tensor> read_arrays(const std::string& path, const char* field) {
  return read_condition_arrays(path, field);
}

void CondOptions::apply(const Model& model, SampleJob& job, int64_t total, int64_t begin, int64_t end) const {
  if (decode_batch < 1) fail(Field{"decode_batch"}, " must be >= 1, got ", decode_batch);
  apply_condition_inputs(model, *this, job, total, begin, end);
}

ImageDecoder CondOptions::image_decoder(std::shared_ptr<const Model> model) const {
  if (!decoder.empty()) return ImageDecoder::from_file(decoder, model, model->device());
  return ImageDecoder::for_model(model);
}

std::string CondOptions::fingerprint() const { return condition_inputs_fingerprint(*this); }

}  // namespace scoreflow::cli
