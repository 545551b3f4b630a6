// --init-noise: initial noise must be floating point (standard normal draws) of shape [N, ...shape];
// the library refuses anything else naming the field and the dtype, before sampling.
#include <gtest/gtest.h>

#include "scoreflow/builtin.h"
#include "scoreflow/error.h"
#include "scoreflow/registry.h"
#include "scoreflow/run.h"
#include "tests/support/io_test_util.h"

namespace scoreflow {
namespace {
using testing_io::expect_error;

TEST(InitNoise, NonFloatingArraysAreRefusedNamingTheDtype) {
  const std::vector<int64_t> shape = {1, 2, 2};
  expect_error(
      [&] {
        check_init_noise(torch::zeros({3, 1, 2, 2}, torch::kLong), 3, shape);
      },
      {"init_noise has dtype int64", "must be floating point"});
  expect_error(
      [&] {
        check_init_noise(torch::zeros({3, 1, 2, 2}, torch::kByte), 3, shape);
      },
      {"init_noise has dtype uint8"});
  expect_error(
      [&] {
        check_init_noise(torch::zeros({3, 1, 2, 2}, torch::kBool), 3, shape);
      },
      {"init_noise has dtype bool"});
  expect_error(
      [&] {
        check_init_noise(torch::zeros({2, 1, 2, 2}), 3, shape);
      },
      {"init_noise has shape [2, 1, 2, 2], expected [3, 1, 2, 2]"});
  EXPECT_NO_THROW(check_init_noise(torch::zeros({3, 1, 2, 2}, torch::kDouble), 3, shape));
  EXPECT_NO_THROW(check_init_noise(torch::zeros({3, 1, 2, 2}, torch::kHalf), 3, shape));
  // run_sampler refuses it too.
  auto model = make_builtin("builtin:gaussian:shape=1x2x2");
  SampleJob job;
  job.seeds = {0, 1, 2};
  job.sigmas = {80, 1, 0};
  job.init_noise = torch::ones({3, 1, 2, 2}, torch::kInt);
  expect_error([&] { run_sampler(*make_sampler("euler", ""), model, job); }, {"init_noise has dtype int32"});
}

}  // namespace
}  // namespace scoreflow
