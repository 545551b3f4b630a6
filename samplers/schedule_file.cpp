#include "scoreflow/schedule_file.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "io/fsutil.h"
#include "scoreflow/amed.h"
#include "scoreflow/fingerprint.h"
#include "scoreflow/sigmas.h"

namespace scoreflow {

namespace {

constexpr const char* kFormat = "scoreflow-schedule/1";

void check_grid_values(const std::vector<double>& s, const std::string& where) {
  if (s.size() < 2) fail(where, ": field 'sigmas' needs at least one positive sigma and the final 0");
  if (s.back() != 0.0) fail(where, ": field 'sigmas' must end in 0, ends in ", s.back());
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    if (!(s[i] > 0) || !std::isfinite(s[i]))
      fail(where, ": field 'sigmas' value ", s[i], " at position ", i, " must be positive and finite");
    if (!(s[i + 1] < s[i]))
      fail(where, ": field 'sigmas' not strictly decreasing at position ", i + 1, " (", s[i], " then ", s[i + 1], ")");
  }
}

}  // namespace

ScheduleFile schedule_file_for(const Model& model, std::vector<double> sigmas, std::string method) {
  ScheduleFile f;
  f.sigmas = std::move(sigmas);
  f.method = std::move(method);
  f.model = model.name();
  f.model_hash = model_fingerprint(model);
  f.schedule = model.metadata().schedule.describe();
  return f;
}

void save_schedule_file(const std::string& path, const ScheduleFile& f) {
  check_grid_values(f.sigmas, "schedule file '" + path + "'");
  nlohmann::json j = {{"format", kFormat},    {"sigmas", f.sigmas},         {"steps", f.steps()},
                      {"method", f.method},   {"sampler", f.sampler},       {"nfe", f.nfe},
                      {"model", f.model},     {"model_hash", f.model_hash}, {"schedule", f.schedule},
                      {"teacher", f.teacher}, {"warmup", f.warmup},         {"seed", f.seed},
                      {"cost", f.cost}};
  if (!f.settings.empty()) {
    nlohmann::json settings = nlohmann::json::object();
    for (const auto& [k, v] : f.settings) settings[k] = v;
    j["settings"] = settings;
  }
  // 17 significant digits: the grid reads back bit for bit.
  io::write_file_atomic(path, j.dump(2) + "\n");
}

ScheduleFile load_schedule_file(const std::string& path) {
  const std::string where = "schedule file '" + path + "'";
  std::vector<uint8_t> bytes;
  try {
    bytes = io::read_file(path);
  } catch (const Error& e) {
    fail("schedule file: ", e.what());  // "cannot read 'PATH': <reason>"
  }
  nlohmann::json j = nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) fail(where, " is not JSON (expected an object with 'sigmas')");
  if (j.value("format", std::string()) != kFormat)
    fail(where, ": field 'format' is '", j.value("format", std::string("(missing)")), "', expected '", kFormat, "'");
  ScheduleFile f;
  try {
    f.sigmas = j.at("sigmas").get<std::vector<double>>();
    f.method = j.value("method", std::string());
    f.sampler = j.value("sampler", std::string());
    f.nfe = j.value("nfe", int64_t{0});
    f.model = j.value("model", std::string());
    f.model_hash = j.at("model_hash").get<std::string>();
    f.schedule = j.at("schedule").get<std::string>();
    f.teacher = j.value("teacher", std::string());
    f.warmup = j.value("warmup", int64_t{0});
    f.seed = j.value("seed", uint64_t{0});
    f.cost = j.value("cost", -1.0);
    if (j.contains("settings"))
      for (const auto& [k, v] : j.at("settings").items()) f.settings.emplace_back(k, v.get<std::string>());
  } catch (const nlohmann::json::exception& e) {
    fail(where, ": ", e.what());
  }
  check_grid_values(f.sigmas, where);
  if (j.contains("steps") && j["steps"] != f.steps())
    fail(where, ": field 'steps' is ", j["steps"].dump(), " but 'sigmas' has ", f.steps(), " steps");
  return f;
}

void check_schedule_file(const ScheduleFile& f, const Model& model, const std::string& path) {
  const std::string hash = model_fingerprint(model);
  if (f.model_hash != hash)
    throw ScheduleMismatch("schedule file '" + path + "' was made for model '" + f.model + "' (model_hash " +
                           f.model_hash + "), not '" + model.name() + "' (model_hash " + hash +
                           "): field 'model_hash' differs");
  const std::string schedule = model.metadata().schedule.describe();
  if (f.schedule != schedule)
    throw ScheduleMismatch("schedule file '" + path + "' was made for schedule " + f.schedule + ", the model has " +
                           schedule + ": field 'schedule' differs");
}

std::string schedule_file_path(const std::string& spec) {
  return spec.rfind("file:", 0) == 0 ? spec.substr(5) : std::string();
}

std::vector<double> resolve_sigmas(const std::string& spec, int steps, int default_steps, const Model& model,
                                   const KeyValueArgs& args, bool force, FinalStep final) {
  const std::string path = schedule_file_path(spec);
  if (path.empty()) return make_sigmas(spec, steps > 0 ? steps : default_steps, model.metadata().schedule, args, final);
  if (!args.values().empty()) fail("schedule file '", path, "' takes no schedule args, got '", args.str(), "'");
  ScheduleFile f = load_schedule_file(path);
  if (!force) check_schedule_file(f, model, path);
  std::vector<double> sigmas = f.sigmas;
  if (final != FinalStep::Zero && sigmas.size() > 2 && sigmas.back() == 0.0) sigmas.pop_back();
  const int held = static_cast<int>(sigmas.size()) - 1;
  if (steps > 0 && steps != held)
    fail("schedule file '", path, "' holds ", held, " steps", f.sampler.empty() ? "" : " (made for " + f.sampler,
         f.sampler.empty() ? "" : " at NFE " + std::to_string(f.nfe) + ")", ", not the ", steps, " asked for");
  return sigmas;
}

}  // namespace scoreflow
