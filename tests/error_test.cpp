// Library errors name fields; cli/error_flags.cpp spells them as flags (docs/design.md §7).
#include "scoreflow/error.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "cli/error_flags.h"
#include "scoreflow/builtin.h"
#include "scoreflow/registry.h"
#include "scoreflow/run.h"
#include "scoreflow/seeds.h"

namespace {

using scoreflow::Error;
using scoreflow::Field;

Error caught(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no scoreflow::Error thrown";
  return Error("");
}

TEST(Error, FieldsAreRecordedWhereTheMessageNamesThem) {
  const Error e = caught([] { scoreflow::fail("malformed ", Field{"seeds"}, " 'x'; see ", Field{"batch"}, "."); });
  EXPECT_STREQ(e.what(), "malformed seeds 'x'; see batch.");
  ASSERT_EQ(e.fields().size(), 2u);
  EXPECT_EQ(e.field(), "seeds");
  EXPECT_EQ(e.fields()[0].pos, 10u);
  EXPECT_EQ(e.fields()[1].pos, 25u);
  const auto upper = [](const std::string& f) { return f == "seeds" ? std::string("SEEDS") : std::string(); };
  EXPECT_EQ(e.spelled(upper), "malformed SEEDS 'x'; see batch.");  // unmapped fields keep their name
  const Error p = e.prefixed("model 'm': ");
  EXPECT_STREQ(p.what(), "model 'm': malformed seeds 'x'; see batch.");
  EXPECT_EQ(p.spelled(upper), "model 'm': malformed SEEDS 'x'; see batch.");
  EXPECT_TRUE(caught([] { scoreflow::fail("no field ", 3); }).fields().empty());
}

TEST(Error, LibraryMessagesNameFieldsAndTheCliSpellsThemAsFlags) {
  const Error seeds = caught([] { scoreflow::parse_seeds("0-x"); });
  EXPECT_EQ(std::string(seeds.what()).rfind("malformed seeds '0-x'", 0), 0u) << seeds.what();
  EXPECT_EQ(scoreflow::cli::flag_message(seeds).rfind("malformed --seeds '0-x'", 0), 0u);

  auto model = scoreflow::open_model("builtin:gaussian:shape=2");
  scoreflow::SampleJob job;
  job.sigmas = {1.0, 0.0};
  job.seeds = {0};
  job.batch = 0;
  const Error batch = caught([&] { scoreflow::run_sampler(*scoreflow::make_sampler("euler"), model, job); });
  EXPECT_STREQ(batch.what(), "batch must be >= 1, got 0");
  EXPECT_EQ(scoreflow::cli::flag_message(batch), "--batch must be >= 1, got 0");

  const Error dtype = caught([] { scoreflow::parse_inference_dtype("half"); });
  EXPECT_EQ(dtype.field(), "dtype");
  EXPECT_EQ(scoreflow::cli::flag_message(dtype), "--dtype 'half' is unknown; valid: fp32, fp16, bf16");

  EXPECT_EQ(scoreflow::cli::flag_for_field("num_images"), "--num-images");
  EXPECT_EQ(scoreflow::cli::flag_for_field("lipschitz_points"), "--points");
  EXPECT_EQ(scoreflow::cli::flag_for_field("no_such_field"), "");
  // The rule (field with '-' for '_') covers only listed fields; renamed ones win; no partial matches.
  EXPECT_EQ(scoreflow::cli::flag_for_field("M"), "--M");
  EXPECT_EQ(scoreflow::cli::flag_for_field("variance"), "--variance");
  EXPECT_EQ(scoreflow::cli::flag_for_field("teacher_batch"), "--batch");
  EXPECT_EQ(scoreflow::cli::flag_for_field("outputs.npz"), "--npz");
  for (const char* not_a_field : {"", " ", "dtype features", "guidance_", "out"})
    EXPECT_EQ(scoreflow::cli::flag_for_field(not_a_field), "") << "'" << not_a_field << "'";
}

}  // namespace
