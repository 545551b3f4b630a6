// scoreflow info: metadata, schedule range, input shape, and one dry forward.
#include <cstdio>
#include <sstream>

#include "cli/common.h"
#include "cli/cpu_path.h"
#include "scoreflow/error.h"
#include "scoreflow/latent.h"

namespace scoreflow::cli {

void register_info(CLI::App& app) {
  auto* sub = app.add_subcommand("info", "print a model's metadata and schedule, and run one dry forward");
  static ModelOptions opts;
  static bool as_json = false;
  opts.add(*sub);
  sub->add_flag("--json", as_json, "print one JSON document");
  set_action(sub, [] {
    auto model = opts.open();
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
    nlohmann::json doc = {{"model", model->name()},
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
    const std::string cpu_path = cpu_path_text(*model);
    if (!cpu_path.empty()) {
      const CpuOptimization c = cpu_optimization(*model);
      doc["cpu_path"] = {{"optimized", c.active},
                         {"max_batch", c.max_batch},
                         {"cache_hit", c.cache_hit},
                         {"cache_file", c.cache_file},
                         {"load_seconds", c.seconds},
                         {"probe_rel_diff", c.probe_rel_diff},
                         {"note", cpu_path},
                         {"choice", c.choice},
                         {"choice_file", c.choice_file},
                         {"plain_ms", c.plain_ms},
                         {"optimized_ms", c.optimized_ms}};
    }
    if (as_json) return print_json(doc);
    std::printf("model        %s\n", model->name().c_str());
    std::printf("summary      %s\n", model->summary().c_str());
    std::printf("prediction   %s\n", prediction_name(m.prediction).c_str());
    std::printf("schedule     %s\n", s.describe().c_str());
    std::printf("sigma range  %.6g .. %.6g\n", s.sigma_min(), s.sigma_max());
    std::printf("time input   %s\n", time_input_name(m.time_input).c_str());
    std::printf("shape        %s\n", shape_text.str().c_str());
    std::printf("data range   [%g, %g]\n", m.data_min, m.data_max);
    std::printf("classes      %d\n", m.num_classes);
    std::printf("head         %s\n", head_name(m.head).c_str());
    std::printf("features     %s\n", m.features.empty() ? "(none)" : m.features.c_str());
    for (const auto& c : conditions)
      std::printf("condition    %s %s %s\n", c["name"].get<std::string>().c_str(), c["shape"].dump().c_str(),
                  c["dtype"].get<std::string>().c_str());
    if (!image_shape.empty())
      std::printf("decoder      %s -> images %s (dry decode ok)\n", m.decoder->method.c_str(),
                  nlohmann::json(image_shape).dump().c_str());
    if (!cpu_path.empty()) std::printf("cpu path     %s\n", cpu_path.c_str());
    std::printf("dry forward  ok at sigma=%.4g, output %s\n", sigma, shape_text.str().c_str());
  });
}

}  // namespace scoreflow::cli
