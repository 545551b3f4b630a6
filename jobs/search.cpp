// What identifies a schedule search's run (its resume manifest): include/scoreflow/jobs.h.
#include <string>

#include "scoreflow/jobs.h"

namespace scoreflow::jobs {
namespace {

std::string named(const std::string& name, const std::string& args) { return args.empty() ? name : name + ":" + args; }

/// "N entries, fnv1a64:…" of an integer list, in order.
std::string list_fingerprint(const std::vector<int64_t>& values) {
  std::string text;
  for (int64_t v : values) text += std::to_string(v) + ",";
  return std::to_string(values.size()) + " entries, " + io::hash_text(text);
}

}  // namespace

io::Settings search_conditioning_settings(const SampleJob& c) {
  io::Settings s = conditioning_settings(c);  // tables by content, guidance settings (when tables)
  if (!c.cond.empty()) s.push_back({"cond rows", list_fingerprint(c.cond_rows)});
  if (c.labels.defined()) {
    const torch::Tensor labels = c.labels.to(torch::kCPU, torch::kLong).contiguous();
    s.push_back(
        {"labels", list_fingerprint({labels.data_ptr<int64_t>(), labels.data_ptr<int64_t>() + labels.numel()})});
  }
  // conditioning_settings records the weight only along with tables; class guidance has none.
  if (c.guidance != 1.0 && c.cond.empty()) s.push_back({"guidance", exact(c.guidance)});
  return s;
}

io::Settings gits_settings(const Model& model, const Sampler& student, const std::string& student_args,
                           const Sampler& teacher, const GitsOptions& o) {
  io::Settings s = model_settings(model);
  s.insert(s.end(), {{"method", "gits"},
                     {"sampler", named(student.name(), student_args)},
                     {"teacher", teacher.name()},
                     {"candidates", exact_list(o.candidates)},
                     {"teacher substeps", std::to_string(o.teacher_substeps)},
                     {"warmup", std::to_string(o.warmup)},
                     {"seed", std::to_string(o.seed)},
                     {"batch", std::to_string(o.batch)},
                     {"dtype", c10::toString(o.dtype)},
                     {"metric", gits_metric_name(o.metric)},
                     // Not `coeff`: it weighs only the DP over the memoised sums, so a resume may change it.
                     {"student step", o.student_step ? "true" : "false"}});
  const io::Settings conditioning = search_conditioning_settings(o.conditioning);
  s.insert(s.end(), conditioning.begin(), conditioning.end());
  return s;
}

io::Settings ld3_settings(const Model& model, const Ld3Student& student, const Sampler& teacher, const Ld3Options& o) {
  io::Settings s = model_settings(model);
  s.insert(s.end(), {{"method", "ld3"},
                     {"sampler", named(student.sampler().name(), student.args())},
                     {"steps", std::to_string(o.steps)},
                     {"final", final_step_name(o.final)},
                     {"teacher", teacher.name()},
                     {"teacher sigmas", exact_list(o.teacher_sigmas)},
                     {"train samples", std::to_string(o.train_samples)},
                     {"valid samples", std::to_string(o.valid_samples)},
                     {"seed", std::to_string(o.seed)},
                     {"iterations", std::to_string(o.iterations)},
                     {"train batch", std::to_string(o.train_batch)},
                     {"lr", exact(o.lr)},
                     {"ball", exact(o.ball)},
                     {"shift lr", exact(o.shift_lr)},
                     {"validate every", std::to_string(o.validate_every)},
                     {"teacher batch", std::to_string(o.teacher_batch)},
                     {"dtype", c10::toString(o.dtype)}});
  const io::Settings conditioning = search_conditioning_settings(o.conditioning);
  s.insert(s.end(), conditioning.begin(), conditioning.end());
  return s;
}

}  // namespace scoreflow::jobs
