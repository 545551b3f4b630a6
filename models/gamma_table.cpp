/// Γ_t = E‖ε̂(x_t, t)‖²/d per timestep (Bao et al., ICLR 2022, Thm 1; in the ε convention of the
/// official code) with its standard error, and the Γ file format.
#include "scoreflow/gamma_table.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "scoreflow/error.h"

namespace scoreflow {

namespace {
constexpr const char* kFormat = "scoreflow.gamma/1";
}  // namespace

void GammaAccumulator::add(double value) {
  if (!std::isfinite(value)) fail("Gamma accumulator: non-finite sample ", value);
  ++count_;
  const double delta = value - mean_;
  mean_ += delta / static_cast<double>(count_);
  m2_ += delta * (value - mean_);  // Welford
}

GammaBatchStats GammaBatchStats::of(const torch::Tensor& values) {
  const torch::Tensor v = values.detach().to(torch::kCPU, torch::kFloat64).contiguous().flatten();
  GammaBatchStats out;
  out.count = v.numel();
  if (out.count == 0) return out;
  const double* p = v.data_ptr<double>();
  for (int64_t i = 0; i < out.count; ++i) {
    if (!std::isfinite(p[i])) fail("Gamma accumulator: non-finite sample ", p[i], " at ", i);
    out.sum += p[i];
  }
  const double mean = out.sum / static_cast<double>(out.count);
  for (int64_t i = 0; i < out.count; ++i) out.m2 += (p[i] - mean) * (p[i] - mean);
  return out;
}

void GammaAccumulator::add(const torch::Tensor& values) { add(GammaBatchStats::of(values)); }

void GammaAccumulator::add(const GammaBatchStats& batch) {
  const int64_t n = batch.count;
  if (n == 0) return;
  if (n < 0 || !std::isfinite(batch.sum) || !(batch.m2 >= 0.0))
    fail("Gamma accumulator: bad batch statistics (count ", n, ", sum ", batch.sum, ", m2 ", batch.m2, ")");
  // Chan et al. merge of the batch's (count, mean, M2) into ours.
  const double batch_mean = batch.sum / static_cast<double>(n);
  const double total = static_cast<double>(count_ + n);
  const double delta = batch_mean - mean_;
  mean_ += delta * static_cast<double>(n) / total;
  m2_ += batch.m2 + delta * delta * static_cast<double>(count_) * static_cast<double>(n) / total;
  count_ += n;
}

double GammaAccumulator::std_err() const {
  if (count_ < 2) return 0.0;
  const double n = static_cast<double>(count_);
  return std::sqrt(m2_ / (n - 1.0) / n);
}

torch::Tensor per_sample_sq_norm(const torch::Tensor& eps_hat) {
  if (eps_hat.dim() < 1 || eps_hat.size(0) == 0 || eps_hat.numel() == 0)
    fail("per_sample_sq_norm: expected [B, ...] with B >= 1, got ", eps_hat.sizes());
  return eps_hat.detach().to(torch::kFloat64).flatten(1).pow(2).mean(1);
}

GammaTable::GammaTable(GammaMeta meta, int64_t num_steps) : meta_(std::move(meta)), num_steps_(num_steps) {
  if (num_steps < 1) fail("GammaTable: num_steps must be >= 1, got ", num_steps);
  entries_.resize(static_cast<size_t>(num_steps + 1));
}

void GammaTable::set(int64_t t, double mean, double std_err, int64_t count) {
  if (t < 1 || t > num_steps_) fail("GammaTable: t = ", t, " is outside [1, ", num_steps_, "]");
  if (!std::isfinite(mean)) fail("GammaTable: Gamma at t = ", t, " is ", mean);
  if (!(std_err >= 0.0)) fail("GammaTable: standard error at t = ", t, " is ", std_err);
  if (count < 1) fail("GammaTable: count at t = ", t, " must be >= 1, got ", count);
  GammaEntry& e = entries_[t];
  e.t = t;
  e.gamma_raw = mean;
  e.gamma = std::clamp(mean, 0.0, 1.0);  // Γ ∈ [0, 1] always holds for the true E[ε|x_t]
  e.std_err = std_err;
  e.count = count;
}

void GammaTable::set(int64_t t, const GammaAccumulator& acc) { set(t, acc.mean(), acc.std_err(), acc.count()); }

bool GammaTable::has(int64_t t) const { return t >= 1 && t <= num_steps_ && entries_[t].count > 0; }

const GammaEntry& GammaTable::entry(int64_t t) const {
  if (!has(t)) fail("GammaTable: no estimate at t = ", t);
  return entries_[t];
}

std::vector<GammaEntry> GammaTable::entries() const {
  std::vector<GammaEntry> out;
  for (int64_t t = 1; t <= num_steps_; ++t)
    if (entries_[t].count > 0) out.push_back(entries_[t]);
  return out;
}

double GammaTable::eps(int64_t t) const {
  if (t < 1 || t > num_steps_) fail("GammaTable: t = ", t, " is outside [1, ", num_steps_, "]");
  if (has(t)) return entries_[t].gamma;
  int64_t lo = t - 1, hi = t + 1;
  while (lo >= 1 && !has(lo)) --lo;
  while (hi <= num_steps_ && !has(hi)) ++hi;
  const bool has_lo = lo >= 1, has_hi = hi <= num_steps_;
  if (!has_lo && !has_hi) fail("GammaTable: no timestep has an estimate");
  if (!has_lo) return entries_[hi].gamma;
  if (!has_hi) return entries_[lo].gamma;
  const double w = static_cast<double>(t - lo) / static_cast<double>(hi - lo);
  return (1.0 - w) * entries_[lo].gamma + w * entries_[hi].gamma;
}

double GammaTable::score_norm(int64_t t, const DiscreteChain& chain) const { return eps(t) / chain.beta_bar(t); }

std::vector<double> GammaTable::dense() const {
  std::vector<double> out(static_cast<size_t>(num_steps_ + 1), 0.0);
  for (int64_t t = 1; t <= num_steps_; ++t) out[t] = eps(t);
  return out;
}

int64_t GammaTable::num_clipped() const { return static_cast<int64_t>(clipped_timesteps().size()); }

std::vector<int64_t> GammaTable::clipped_timesteps() const {
  std::vector<int64_t> out;
  for (int64_t t = 1; t <= num_steps_; ++t)
    if (entries_[t].count > 0 && entries_[t].gamma != entries_[t].gamma_raw) out.push_back(t);
  return out;
}

std::string GammaTable::to_json() const {
  nlohmann::json j;
  j["format"] = kFormat;
  j["convention"] = kConvention;
  j["convention_note"] = "gamma[t] = E||eps_hat(x_t, t)||^2 / d; paper's score norm = gamma / beta_bar_t";
  j["model"] = meta_.model;
  j["schedule"] = meta_.schedule;
  j["dataset"] = meta_.dataset;
  j["num_steps"] = num_steps_;
  j["timestep_convention"] = "t in 1..N is the model's step t-1; t = 0 is data";
  j["settings"] = meta_.settings;
  j["num_clipped"] = num_clipped();
  nlohmann::json rows = nlohmann::json::array();
  for (const GammaEntry& e : entries())
    rows.push_back(
        {{"t", e.t}, {"gamma", e.gamma}, {"gamma_raw", e.gamma_raw}, {"std_err", e.std_err}, {"count", e.count}});
  j["timesteps"] = rows;
  return j.dump(1);
}

namespace {

void check_field(const std::string& source, const char* field, const std::string& in_file,
                 const std::string& expected) {
  if (!expected.empty() && in_file != expected)
    fail("Gamma file ", source, " was estimated for another ", field, ": field '", field, "' is '", in_file,
         "' in the file but '", expected, "' here");
}

}  // namespace

GammaTable GammaTable::from_json(const std::string& text, const DiscreteChain& chain, const GammaMeta& expect,
                                 const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("Gamma file ", source, " is not valid JSON: ", e.what());
  }
  try {
    if (j.value("format", std::string()) != kFormat)
      fail("Gamma file ", source, " has format '", j.value("format", std::string("(none)")), "', expected '", kFormat,
           "'");
    GammaMeta meta;
    meta.model = j.at("model").get<std::string>();
    meta.schedule = j.at("schedule").get<std::string>();
    meta.dataset = j.value("dataset", std::string());
    if (j.contains("settings"))
      for (const auto& [key, value] : j.at("settings").items())
        meta.settings[key] = value.is_string() ? value.get<std::string>() : value.dump();
    check_field(source, "model", meta.model, expect.model);
    check_field(source, "schedule", meta.schedule, expect.schedule);
    const int64_t n = j.at("num_steps").get<int64_t>();
    if (n != chain.num_steps())
      fail("Gamma file ", source, " was estimated for another schedule: field 'num_steps' is ", n, " in the file but ",
           chain.num_steps(), " here");
    const std::string convention = j.at("convention").get<std::string>();
    if (convention != "eps" && convention != "score")
      fail("Gamma file ", source, ": unknown convention '", convention, "' (valid: eps, score)");
    GammaTable table(std::move(meta), n);
    for (const auto& row : j.at("timesteps")) {
      const int64_t t = row.at("t").get<int64_t>();
      if (t < 1 || t > n) fail("Gamma file ", source, ": timestep ", t, " outside [1, ", n, "]");
      // Score-norm files: Γ_eps = β̄_t·Γ_score.
      const double scale = convention == "score" ? chain.beta_bar(t) : 1.0;
      const double raw = row.contains("gamma_raw") ? row.at("gamma_raw").get<double>() : row.at("gamma").get<double>();
      table.set(t, scale * raw, scale * row.value("std_err", 0.0), row.at("count").get<int64_t>());
    }
    if (table.entries().empty()) fail("Gamma file ", source, " holds no timesteps");
    return table;
  } catch (const nlohmann::json::exception& e) {
    fail("Gamma file ", source, " is malformed: ", e.what());
  }
}

void GammaTable::save(const std::string& path) const {
  const std::string text = to_json();
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail("cannot write '", tmp, "'");
    out << text << '\n';
    out.flush();
    if (!out) fail("cannot write '", tmp, "'");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail("cannot rename '", tmp, "' to '", path, "'");
  }
}

GammaTable GammaTable::load(const std::string& path, const DiscreteChain& chain, const GammaMeta& expect) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read Gamma file '", path, "'");
  std::ostringstream text;
  text << in.rdbuf();
  return from_json(text.str(), chain, expect, "'" + path + "'");
}

}  // namespace scoreflow

namespace scoreflow {

GammaMeta gamma_meta_for(const Model& model) {
  GammaMeta meta;
  meta.model = model.name();
  meta.schedule = model.metadata().schedule.describe();
  return meta;
}

GammaFile GammaFile::read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read Gamma file '", path, "'");
  std::ostringstream text;
  text << in.rdbuf();
  return GammaFile{path, text.str()};
}

GammaTable gamma_for_model(const Model& model, const GammaFile& file) {
  return GammaTable::from_json(file.text, chain_of(model), gamma_meta_for(model), "'" + file.path + "'");
}

GammaTable load_gamma_for(const Model& model, const std::string& path) {
  return gamma_for_model(model, GammaFile::read(path));
}

}  // namespace scoreflow
