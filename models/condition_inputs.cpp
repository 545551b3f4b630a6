// Conditioning inputs as a user names them (files, row lists, guidance texts) → a job's conditioning.
#include "scoreflow/condition_inputs.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "io/text.h"
#include "scoreflow/error.h"
#include "scoreflow/fingerprint.h"

namespace scoreflow {
namespace {

int64_t parse_row(const std::string& item) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(item.c_str(), &end, 10);
  if (item.empty() || *end != '\0' || errno != 0 || v < 0)
    fail(Field{"cond_rows"}, " item '", item, "' is not a row index (a non-negative integer or a range a-b)");
  return v;
}

const std::map<std::string, torch::Tensor>& no_arrays() {
  static const std::map<std::string, torch::Tensor> none;
  return none;
}

}  // namespace

std::vector<int64_t> parse_condition_rows(const std::string& text) {
  std::vector<int64_t> rows;
  for (const std::string& item : io::split_list(text)) {
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

std::pair<double, double> parse_guidance_interval(const std::string& text) {
  const std::vector<std::string> parts = io::split_list(text);
  double v[2] = {0, 0};
  bool ok = parts.size() == 2;
  for (size_t i = 0; ok && i < 2; ++i) {
    char* e = nullptr;
    v[i] = std::strtod(parts[i].c_str(), &e);
    ok = *e == '\0' && std::isfinite(v[i]) ? true : (parts[i] == "inf" ? (v[i] = INFINITY, true) : false);
  }
  if (!ok) fail(Field{"guidance_interval"}, " '", text, "' must be lo,hi (two numbers, hi may be inf)");
  return {v[0], v[1]};
}

void apply_condition_inputs(const Model& model, const ConditionInputs& in, SampleJob& job, int64_t total, int64_t begin,
                            int64_t end) {
  const ModelMetadata& m = model.metadata();
  if (!in.interval.empty()) std::tie(job.guidance_lo, job.guidance_hi) = parse_guidance_interval(in.interval);
  job.guidance_rescale = in.rescale;
  if (!in.cond_rows.empty() && in.cond.empty()) fail(Field{"cond_rows"}, " needs ", Field{"cond"});
  if (!in.cond.empty()) {
    job.cond = check_condition_tables(m.conditions, read_condition_arrays(in.cond, "cond"), "cond");
    std::vector<int64_t> explicit_rows;
    if (!in.cond_rows.empty()) {
      explicit_rows = parse_condition_rows(in.cond_rows);
      // One row given: every sample uses it.
      if (explicit_rows.size() == 1 && total > 1) explicit_rows.assign(static_cast<size_t>(total), explicit_rows[0]);
    }
    const std::vector<int64_t> rows = condition_rows(total, job.cond.rows, explicit_rows);
    job.cond_rows.assign(rows.begin() + begin, rows.begin() + end);
  }
  if (!in.uncond.empty()) {
    job.uncond = check_condition_tables(m.conditions, read_condition_arrays(in.uncond, "uncond"), "uncond");
    check_uncond_rows(job.cond, job.uncond);
  }
  check_job_conditioning(model, job);
}

std::string condition_inputs_fingerprint(const ConditionInputs& in) {
  return (in.cond.empty() ? "-" : io::hash_file(in.cond)) + "|" + in.cond_rows + "|" +
         (in.uncond.empty() ? "-" : io::hash_file(in.uncond)) + "|" + in.interval + "|" + std::to_string(in.rescale);
}

ItemConditions item_conditions_from_files(const Model& model, int64_t items, const std::string& cond,
                                          const std::string& uncond) {
  return item_conditions(model, items, cond.empty() ? no_arrays() : read_condition_arrays(cond, "cond"),
                         uncond.empty() ? no_arrays() : read_condition_arrays(uncond, "uncond"));
}

torch::Tensor class_labels(const std::string& label, const Model& model, const std::vector<uint64_t>& seeds) {
  if (label.empty()) return {};
  const int num_classes = model.metadata().num_classes;
  if (num_classes == 0) fail(Field{"label"}, " needs a class-conditional model; ", model.name(), " has num_classes 0");
  std::vector<int64_t> labels;
  for (uint64_t seed : seeds) {
    if (label == "random") {
      labels.push_back(static_cast<int64_t>(seed % static_cast<uint64_t>(num_classes)));
      continue;
    }
    try {
      size_t pos = 0;
      labels.push_back(std::stoll(label, &pos));
      if (pos != label.size()) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      fail(Field{"label"}, " '", label, "' is not an integer or 'random'");
    }
  }
  return torch::tensor(labels, torch::kLong);
}

}  // namespace scoreflow
