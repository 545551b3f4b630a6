// What identifies a schedule search's run (its resume manifest): include/scoreflow/jobs.h.
#include <cstdio>

#include "scoreflow/jobs.h"

namespace scoreflow::jobs {
namespace {

std::string exact(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string named(const std::string& name, const std::string& args) { return args.empty() ? name : name + ":" + args; }

}  // namespace

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
  return s;
}

}  // namespace scoreflow::jobs
