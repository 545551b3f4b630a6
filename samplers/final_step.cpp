// FinalStep: parsing, and the σ grids each choice integrates over (make_sigmas, explicit_sigmas).
#include "scoreflow/final_step.h"

#include "scoreflow/error.h"
#include "scoreflow/sigmas.h"

namespace scoreflow {

FinalStep parse_final_step(const std::string& text) {
  if (text == "zero") return FinalStep::Zero;
  if (text == "none") return FinalStep::None;
  if (text == "denoise") return FinalStep::Denoise;
  fail("final: unknown value '", text, "'; valid: zero, none, denoise");
}

std::string final_step_name(FinalStep final) {
  switch (final) {
    case FinalStep::Zero:
      return "zero";
    case FinalStep::None:
      return "none";
    case FinalStep::Denoise:
      return "denoise";
  }
  return "?";
}

std::vector<double> make_sigmas(const std::string& name, int steps, const NoiseSchedule& schedule,
                                const KeyValueArgs& args, FinalStep final) {
  if (final == FinalStep::Zero) return make_sigmas(name, steps, schedule, args);
  if (steps < 1) fail("steps must be >= 1, got ", steps);
  // The same discretisation with one more point, its σ_min the last: `steps` intervals that end
  // where the zero grid's last positive interval ends.
  std::vector<double> s = make_sigmas(name, steps + 1, schedule, args);
  s.pop_back();
  return s;
}

std::vector<double> explicit_sigmas(const std::vector<double>& values, FinalStep final) {
  if (final == FinalStep::Zero) return explicit_sigmas(values);
  if (!values.empty() && values.back() == 0)
    fail(Field{"sigmas"}, ": the list ends at 0, but final '", final_step_name(final),
         "' stops at the last positive sigma (leave the 0 out)");
  std::vector<double> s = explicit_sigmas(values);
  s.pop_back();
  if (s.size() < 2)
    fail(Field{"sigmas"}, ": final '", final_step_name(final), "' needs at least two sigmas (one step), got ",
         s.size());
  return s;
}

}  // namespace scoreflow
