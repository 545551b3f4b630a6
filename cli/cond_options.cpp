#include "cli/cond_options.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "cli/list_arg.h"
#include "scoreflow/checkpoint.h"
#include "scoreflow/error.h"
#include "scoreflow/npy.h"

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
  const std::map<std::string, torch::Tensor> none;
  ItemConditions c = item_conditions(model, items, cond.empty() ? none : read_arrays(cond, "cond"),
                                     uncond.empty() ? none : read_arrays(uncond, "uncond"));
  if (!c.empty()) std::fprintf(stderr, "note: %s\n", c.note(model).c_str());
  return c;
}

torch::Tensor class_labels(const std::string& label, const Model& model, const std::vector<uint64_t>& seeds) {
  if (label.empty()) return {};
  const int num_classes = model.metadata().num_classes;
  if (num_classes == 0) fail("--class needs a class-conditional model; ", model.name(), " has num_classes 0");
  std::vector<int64_t> labels;
  for (uint64_t seed : seeds) {
    if (label == "random") {
      labels.push_back(static_cast<int64_t>(seed % static_cast<uint64_t>(num_classes)));
    } else {
      try {
        size_t pos = 0;
        labels.push_back(std::stoll(label, &pos));
        if (pos != label.size()) throw std::invalid_argument("trailing");
      } catch (const std::exception&) {
        fail("--class '", label, "' is not an integer or 'random'");
      }
    }
  }
  return torch::tensor(labels, torch::kLong);
}

std::map<std::string, torch::Tensor> read_arrays(const std::string& path, const char* field) {
  return read_condition_arrays(path, field);
}

namespace {

int64_t parse_row(const std::string& item) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(item.c_str(), &end, 10);
  if (item.empty() || *end != '\0' || errno != 0 || v < 0)
    fail(Field{"cond_rows"}, " item '", item, "' is not a row index (a non-negative integer or a range a-b)");
  return v;
}

std::vector<int64_t> parse_rows(const std::string& text) {
  std::vector<int64_t> rows;
  for (const std::string& item : split_commas(text)) {
    const size_t dash = item.find('-', 1);
    if (dash == std::string::npos) {
      rows.push_back(parse_row(item));
      continue;
    }
    const int64_t lo = parse_row(item.substr(0, dash)), hi = parse_row(item.substr(dash + 1));
    if (hi < lo || hi - lo > 10000000) fail(Field{"cond_rows"}, " range '", item, "' must be a-b with a <= b");
    for (int64_t r = lo; r <= hi; ++r) rows.push_back(r);
  }
  if (rows.empty()) fail(Field{"cond_rows"}, " '", text, "' gives no rows");
  return rows;
}

}  // namespace

void CondOptions::apply(const Model& model, SampleJob& job, int64_t total, int64_t begin, int64_t end) const {
  const ModelMetadata& m = model.metadata();
  if (!interval.empty()) {
    const std::vector<std::string> parts = split_commas(interval);
    double v[2] = {0, 0};
    bool ok = parts.size() == 2;
    for (size_t i = 0; ok && i < 2; ++i) {
      char* e = nullptr;
      v[i] = std::strtod(parts[i].c_str(), &e);
      ok = *e == '\0' && std::isfinite(v[i]) ? true : (parts[i] == "inf" ? (v[i] = INFINITY, true) : false);
    }
    if (!ok) fail(Field{"guidance_interval"}, " '", interval, "' must be lo,hi (two numbers, hi may be inf)");
    job.guidance_lo = v[0], job.guidance_hi = v[1];
  }
  job.guidance_rescale = rescale;
  if (!cond_rows.empty() && cond.empty()) fail(Field{"cond_rows"}, " needs ", Field{"cond"});
  if (!cond.empty()) {
    job.cond = check_condition_tables(m.conditions, read_arrays(cond, "cond"), "cond");
    std::vector<int64_t> explicit_rows;
    if (!cond_rows.empty()) {
      explicit_rows = parse_rows(cond_rows);
      if (explicit_rows.size() == 1 && total > 1) explicit_rows.assign(static_cast<size_t>(total), explicit_rows[0]);
    }
    const std::vector<int64_t> rows = condition_rows(total, job.cond.rows, explicit_rows);
    job.cond_rows.assign(rows.begin() + begin, rows.begin() + end);
  }
  if (!uncond.empty()) {
    job.uncond = check_condition_tables(m.conditions, read_arrays(uncond, "uncond"), "uncond");
    check_uncond_rows(job.cond, job.uncond);
  }
  if (decode_batch < 1) fail(Field{"decode_batch"}, " must be >= 1, got ", decode_batch);
  check_job_conditioning(model, job);
}

ImageDecoder CondOptions::image_decoder(std::shared_ptr<const Model> model) const {
  if (!decoder.empty()) return ImageDecoder::from_file(decoder, model, model->device());
  return ImageDecoder::for_model(model);
}

std::string CondOptions::fingerprint() const {
  return (cond.empty() ? "-" : io::hash_file(cond)) + "|" + cond_rows + "|" +
         (uncond.empty() ? "-" : io::hash_file(uncond)) + "|" + interval + "|" + std::to_string(rescale);
}

}  // namespace scoreflow::cli
