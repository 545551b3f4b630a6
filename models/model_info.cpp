// A model's information report (scoreflow/model_info.h): metadata and one dry forward.
#include "scoreflow/model_info.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <cstdio>
#include <iterator>
#include <sstream>
#include <utility>

#include "models/cpu_teams.h"
#include "scoreflow/latent.h"

namespace scoreflow {
namespace {

std::string line(const char* key, const std::string& value) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%-12s ", key);
  return buf + value + "\n";
}

std::string format(const char* fmt, double a, double b) {
  char buf[128];
  std::snprintf(buf, sizeof buf, fmt, a, b);
  return buf;
}

}  // namespace

ModelInfo model_info(const std::shared_ptr<const Model>& model, const std::string& cpu_path_note) {
  const ModelMetadata& m = model->metadata();
  const NoiseSchedule& s = m.schedule;
  // Dry forward at a mid-range σ: checks the signature and the output shape.
  std::vector<int64_t> shape{2};
  shape.insert(shape.end(), m.shape.begin(), m.shape.end());
  const double sigma = std::sqrt(s.sigma_min() * s.sigma_max());
  torch::Tensor x = torch::randn(shape).to(model->device()) * sigma;
  // Conditioned models run on zero conditions (one row shared by the batch); a latent model's
  // decoder runs once on the output.
  Conditioning zeros;
  nlohmann::json conditions = nlohmann::json::array();
  for (const ConditionSpec& c : m.conditions) {
    std::vector<int64_t> row{1};
    row.insert(row.end(), c.shape.begin(), c.shape.end());
    zeros.conds.push_back(torch::zeros(row, torch::TensorOptions().dtype(c.dtype).device(model->device())));
    const char* dtype = c.dtype == torch::kLong ? "int64" : c.dtype == torch::kInt ? "int32" : "float32";
    conditions.push_back({{"name", c.name}, {"shape", c.shape}, {"dtype", dtype}});
  }
  Denoiser denoise(model, zeros);
  torch::Tensor d = denoise(x, sigma);
  denoise.check_finite();
  std::vector<int64_t> image_shape;
  if (m.decoder) image_shape = ImageDecoder::for_model(model).images(d, 2)[0].sizes().vec();
  std::ostringstream shape_text;
  shape_text << c10::IntArrayRef(m.shape);

  ModelInfo info;
  nlohmann::json& doc = info.json;
  doc = {{"model", model->name()},
         {"summary", model->summary()},
         {"prediction", prediction_name(m.prediction)},
         {"schedule", s.describe()},
         {"sigma_min", s.sigma_min()},
         {"sigma_max", s.sigma_max()},
         {"time_input", time_input_name(m.time_input)},
         {"shape", m.shape},
         {"data_range", {m.data_min, m.data_max}},
         {"num_classes", m.num_classes},
         {"head", head_name(m.head)},
         {"features", m.features.empty() ? nlohmann::json() : nlohmann::json(m.features)},
         {"conditions", conditions},
         {"decoded_image_shape", image_shape.empty() ? nlohmann::json() : nlohmann::json(image_shape)},
         {"dry_forward", {{"sigma", sigma}, {"output_shape", d.sizes().vec()}, {"ok", true}}}};
  if (!m.json.empty()) doc["metadata"] = nlohmann::json::parse(m.json);
  if (!cpu_path_note.empty()) {
    const CpuOptimization c = cpu_optimization(*model);
    doc["cpu_path"] = {{"optimized", c.active},
                       {"max_batch", c.max_batch},
                       {"cache_hit", c.cache_hit},
                       {"cache_file", c.cache_file},
                       {"load_seconds", c.seconds},
                       {"probe_rel_diff", c.probe_rel_diff},
                       {"note", cpu_path_note},
                       {"choice", c.choice},
                       {"choice_file", c.choice_file},
                       {"plain_ms", c.plain_ms},
                       {"optimized_ms", c.optimized_ms},
                       {"fused_ms", c.fused_ms},
                       {"module", c.module},
                       {"teams", cpu_team_limit(*model)},
                       {"winograd_convolutions", c.winograd_convolutions},
                       {"pointwise_convolutions", c.pointwise_convolutions},
                       {"pointwise_products", c.pointwise_products},
                       {"fused_group_norms", c.fused_group_norms},
                       {"fused_additions", c.fused_additions},
                       {"onednn_convolutions_off", c.onednn_convolutions_off},
                       {"onednn_convolutions_dropped", c.onednn_convolutions_dropped}};
  }

  std::string& t = info.text;
  t += line("model", model->name());
  t += line("summary", model->summary());
  t += line("prediction", prediction_name(m.prediction));
  t += line("schedule", s.describe());
  t += line("sigma range", format("%.6g .. %.6g", s.sigma_min(), s.sigma_max()));
  t += line("time input", time_input_name(m.time_input));
  t += line("shape", shape_text.str());
  t += line("data range", format("[%g, %g]", m.data_min, m.data_max));
  t += line("classes", std::to_string(m.num_classes));
  t += line("head", head_name(m.head));
  t += line("features", m.features.empty() ? "(none)" : m.features);
  for (const auto& c : conditions)
    t +=
        line("condition", c["name"].get<std::string>() + " " + c["shape"].dump() + " " + c["dtype"].get<std::string>());
  if (!image_shape.empty())
    t += line("decoder", m.decoder->method + " -> images " + nlohmann::json(image_shape).dump() + " (dry decode ok)");
  if (!cpu_path_note.empty()) t += line("cpu path", cpu_path_note);
  char dry[64];
  std::snprintf(dry, sizeof dry, "ok at sigma=%.4g, output ", sigma);
  t += line("dry forward", dry + shape_text.str());
  return info;
}

namespace {

/// Which TorchScript module serves the CPU: cpu_path_note without the thread teams.
std::string cpu_module_note(const Model& model, const LoadOptions& load, const std::string& disabled) {
  if (!load.optimize) return disabled;
  const CpuOptimization c = cpu_optimization(model);
  if (!c.active) return "plain module: " + c.note;
  char buf[200];
  const std::string batches =
      c.max_batch == CpuOptimization::kEveryBatch ? "every batch" : "batches <= " + std::to_string(c.max_batch);
  std::snprintf(buf, sizeof buf, "%s for %s (%.2f s at load%s; probe difference %.2g",
                c.module == "fused" ? "fused (oneDNN Graph)" : "optimised", batches.c_str(), c.seconds,
                c.cache_hit ? ", frozen module from the cache" : "", c.probe_rel_diff);
  std::string text = buf;
  // What optimize_for_cpu rewrote, where it rewrote anything.
  const std::pair<int, const char*> rewritten[] = {
      {c.winograd_convolutions, "3x3 convolutions routed to oneDNN Winograd"},
      {c.pointwise_convolutions,
       c.pointwise_products == "LibTorch"
           ? "1x1 convolutions run as LibTorch's batched products on NCHW (oneDNN's do not run here)"
           : "1x1 convolutions run by oneDNN on NCHW"},
      {c.fused_group_norms, "group norms fused with SiLU"},
      {c.fused_additions, "additions fused with the operator after them"}};
  if (c.module == "optimized")
    for (const auto& [count, what] : rewritten)
      if (count > 0) text += "; " + std::to_string(count) + " " + what;
  if (!c.onednn_convolutions_off.empty()) {
    // The 1x1 ones are oneDNN's, or LibTorch's products where oneDNN's do not run (or the build has none).
    const std::string& d = c.onednn_convolutions_dropped;
    const std::string what = c.dropped_pointwise_products != "LibTorch" ? "oneDNN's " + d + " convolutions"
                             : d == "1x1"                               ? "the 1x1 convolutions as LibTorch's products"
                                          : "oneDNN's Winograd convolutions and the 1x1 ones as LibTorch's products";
    text += "; without " + what + ", as the module with all of them " + c.onednn_convolutions_off;
  }
  if (c.choice == "cached") text += "; module and batch limit timed at an earlier load";
  const auto timing = [&](const char* name, const std::vector<double>& ms) {
    if (ms.empty() || c.plain_ms.size() != ms.size()) return;
    text += std::string("; ms per call plain/") + name + ":";
    for (size_t i = 0; i < ms.size() && i < std::size(CpuOptimization::kTimedBatches); ++i) {
      std::snprintf(buf, sizeof buf, "%s %.3g/%.3g at %s%d", i ? "," : "", c.plain_ms[i], ms[i], i ? "" : "batch ",
                    CpuOptimization::kTimedBatches[i]);
      text += buf;
    }
  };
  timing("optimised", c.optimized_ms);
  timing("fused", c.fused_ms);
  return text + ")";
}

}  // namespace

std::string cpu_path_note(const Model& model, const LoadOptions& load, const std::string& disabled) {
  if (!has_cpu_fast_path(model)) return "";
  std::string text = cpu_module_note(model, load, disabled);
  const int teams = cpu_team_limit(model);
  if (teams > 1)
    text += "; calls of " + std::to_string(detail::cpu_team_min_rows(cpu_optimization(model).cpu_teams)) +
            " or more rows split over up to " + std::to_string(teams) + " thread teams of " +
            std::to_string(at::get_num_threads() / teams) + " threads";
  return text;
}

}  // namespace scoreflow
