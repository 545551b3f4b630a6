#pragma once
/// Helpers for the job-layer tests (chunked sampling with a ChunkStore).
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "scoreflow/checkpoint.h"
#include "scoreflow/error.h"
#include "scoreflow/jobs.h"

namespace scoreflow::testing_jobs {

/// What a run of `job` killed after its first `seeds` seeds leaves in the chunk store at `parts`: only
/// those seeds (with their labels, noise and conditioning rows where the job has them) sampled into the store.
inline void run_killed_after(const Sampler& sampler, const std::shared_ptr<const Model>& model, const SampleJob& job,
                             const std::string& parts, const io::Settings& settings, size_t seeds,
                             const std::string& option = "the output") {
  io::ChunkStore store(parts, settings, false, option);
  SampleJob first = job;
  first.seeds.resize(seeds);
  const auto n = static_cast<int64_t>(seeds);
  if (!first.cond_rows.empty()) first.cond_rows.resize(seeds);
  if (first.labels.defined()) first.labels = first.labels.narrow(0, 0, n);
  if (first.init_noise.defined()) first.init_noise = first.init_noise.narrow(0, 0, n);
  jobs::ChunkOptions o;
  o.store = &store;
  jobs::run_chunked(sampler, model, first, o);
}

/// The Error `fn` throws (a test failure when it throws none).
template <typename Fn>
Error error_of(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no Error thrown";
  return Error("");
}

/// The names of the fields an Error names, in order.
inline std::vector<std::string> field_names(const Error& e) {
  std::vector<std::string> out;
  for (const auto& f : e.fields()) out.push_back(f.name);
  return out;
}

/// `call` throws an Error whose first field is `field` and whose message contains `message`.
inline void expect_field_error(const std::function<void()>& call, const std::string& field,
                               const std::string& message) {
  try {
    call();
    FAIL() << "accepted; expected: " << message;
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), field) << e.what();
    EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
  }
}

}  // namespace scoreflow::testing_jobs
