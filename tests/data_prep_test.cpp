// The metadata field data_prep: parsed and refused naming the field, applied by the dataset readers
// (exact pad values at the border), and the shipped demo model + the shipped Fashion-MNIST test set.
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <functional>

#include "scoreflow/data.h"
#include "scoreflow/empirical.h"
#include "scoreflow/error.h"
#include "scoreflow/gamma_estimation.h"
#include "scoreflow/model.h"
#include "scoreflow/model_data.h"
#include "tests/support/error_text.h"
#include "tests/support/io_test_util.h"

namespace scoreflow {
namespace {
using testing_io::expect_error;

const std::string kMeta =
    R"({"prediction":"eps","schedule":{"type":"edm"},"time_input":"sigma","shape":[1,6,8],"data_range":[-1,1]})";

using scoreflow::testing_support::error_of;

/// The data_prep of metadata `kMeta` with `overrides`.
io::DataPrep prep(const std::vector<std::string>& overrides) {
  return dataset_options(resolve_metadata(kMeta, "", overrides, "m")).prep;
}

TEST(DataPrep, MetadataFieldIsParsedAndRefusedByName) {
  io::DataPrep p = prep({R"(data_prep={"pad": 2, "pad_value": -1})"});
  EXPECT_EQ(p.pad_top, 2);
  EXPECT_EQ(p.pad_right, 2);
  EXPECT_EQ(p.pad_value, -1);
  EXPECT_EQ(p.describe(), R"({"pad": 2, "pad_value": -1})");
  p = prep({"data_prep.pad=[1,3,0,2]"});  // pad_value defaults to data_range[0]
  EXPECT_EQ(p.pad_bottom, 3);
  EXPECT_EQ(p.pad_left, 0);
  EXPECT_EQ(p.pad_value, -1);
  EXPECT_TRUE(prep({"data_prep.resize=center_crop"}).resize);
  EXPECT_TRUE(prep({}).empty());
  EXPECT_EQ(dataset_options(resolve_metadata(kMeta, "", {}, "m")).shape, (std::vector<int64_t>{1, 6, 8}));
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"data_prep=3", "'data_prep' must be an object"},
      {"data_prep.crop=1", "'data_prep.crop' is unknown"},
      {"data_prep.pad=-1", "'data_prep.pad' must be an integer"},
      {"data_prep.pad=[1,2]", "'data_prep.pad' must be N or [top, bottom, left, right]"},
      {"data_prep.pad=3", "'data_prep.pad' 3 leaves no pixels"},
      {"data_prep.resize=stretch", "'data_prep.resize' has unknown value \"stretch\"; valid: center_crop"},
      {"data_prep.pad_value=0.5", "'data_prep.pad_value' is given without 'data_prep.pad'"},
      {"data_prep={}", "'data_prep' must be {"},
  };
  for (const auto& [override_, needle] : bad)
    EXPECT_NE(error_of([&] { resolve_metadata(kMeta, "", {override_}, "m"); }).find(needle), std::string::npos)
        << override_ << ": " << error_of([&] { resolve_metadata(kMeta, "", {override_}, "m"); });
  EXPECT_NE(error_of([&] {
              resolve_metadata(kMeta, "", {"data_prep.pad=1", "data_prep.pad_value=2"}, "m");
            }).find("'data_prep.pad_value' 2 is outside data_range [-1, 1]"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              resolve_metadata(kMeta, "", {"data_prep.pad=1", "data_prep.resize=center_crop"}, "m");
            }).find("gives pad and resize"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              resolve_metadata(kMeta, "", {"shape=[2]", "data_prep.pad=1"}, "m");
            }).find("'data_prep' needs an image-shaped model"),
            std::string::npos);
}

/// idx3 bytes of `n` images h x w: pixel i of the file is (i * 37) % 256.
std::vector<uint8_t> idx_bytes(uint32_t n, uint32_t h, uint32_t w) {
  std::vector<uint8_t> b = {0, 0, 8, 3};
  for (uint32_t v : {n, h, w})
    for (int s = 24; s >= 0; s -= 8) b.push_back((v >> s) & 0xff);
  for (uint32_t i = 0; i < n * h * w; ++i) b.push_back(uint8_t(i * 37 % 256));
  return b;
}

class DataPrepIo : public testing_io::TempDirTest {};

TEST_F(DataPrepIo, PaddingPutsExactlyThePadValueAtTheBorder) {
  testing_io::write_bytes(path("x-idx3-ubyte"), idx_bytes(3, 2, 4));
  const torch::Tensor raw = io::open_dataset(path("x-idx3-ubyte"), {})->batch(0, 3);  // [3, 1, 2, 4]
  for (const std::string& pad : {"2", "[1,3,0,4]"}) {
    ModelMetadata m = resolve_metadata(kMeta, "", {"data_prep.pad=" + pad, "data_prep.pad_value=-0.25"}, "m");
    const auto ds = io::open_dataset(path("x-idx3-ubyte"), dataset_options(m));
    const io::DataPrep p = dataset_options(m).prep;
    EXPECT_EQ(ds->shape(), (std::vector<int64_t>{1, 6, 8})) << pad;
    EXPECT_NE(ds->describe().find("padded from 2x4 by data_prep"), std::string::npos) << ds->describe();
    const torch::Tensor x = ds->batch(0, 3);
    ASSERT_EQ(x.sizes(), (std::vector<int64_t>{3, 1, 6, 8}));
    torch::Tensor border = torch::ones({6, 8}, torch::kBool);
    border.slice(0, p.pad_top, 6 - p.pad_bottom).slice(1, p.pad_left, 8 - p.pad_right).fill_(false);
    for (int i = 0; i < 3; ++i) {
      EXPECT_TRUE(x[i][0].masked_select(border).eq(-0.25f).all().item<bool>()) << pad;
      EXPECT_TRUE(x[i][0].slice(0, p.pad_top, 6 - p.pad_bottom).slice(1, p.pad_left, 8 - p.pad_right).equal(raw[i][0]))
          << pad;
    }
  }
  // Items already of the wanted shape (e.g. the model's own samples) are used as they are.
  testing_io::write_bytes(path("y-idx3-ubyte"), idx_bytes(2, 6, 8));
  ModelMetadata m = resolve_metadata(kMeta, "", {"data_prep.pad=2"}, "m");
  EXPECT_TRUE(io::open_dataset(path("y-idx3-ubyte"), dataset_options(m))
                  ->batch(0, 2)
                  .equal(io::open_dataset(path("y-idx3-ubyte"), {})->batch(0, 2)));
}

TEST_F(DataPrepIo, MismatchNamesTheFieldAndNoResize) {
  testing_io::write_bytes(path("x-idx3-ubyte"), idx_bytes(1, 3, 4));
  const ModelMetadata plain = resolve_metadata(kMeta, "", {}, "m");
  const std::string e = error_of([&] { io::open_dataset(path("x-idx3-ubyte"), dataset_options(plain)); });
  EXPECT_NE(e.find("holds 1x3x4 items but 1x6x8 was asked for"), std::string::npos) << e;
  EXPECT_NE(e.find("metadata field 'data_prep'"), std::string::npos) << e;
  EXPECT_EQ(e.find("enable resize"), std::string::npos) << e;
  const ModelMetadata padded = resolve_metadata(kMeta, "", {"data_prep.pad=2"}, "m");
  const std::string f = error_of([&] { io::open_dataset(path("x-idx3-ubyte"), dataset_options(padded)); });
  EXPECT_NE(f.find(R"(data_prep {"pad": 2, "pad_value": -1} makes 2x4 items 6x8, not 3x4)"), std::string::npos) << f;
  // data_prep resize, as an explicit resize does, crops and resizes.
  const ModelMetadata resized = resolve_metadata(kMeta, "", {"data_prep.resize=center_crop"}, "m");
  EXPECT_EQ(io::open_dataset(path("x-idx3-ubyte"), dataset_options(resized))->batch(0, 1).sizes(),
            (std::vector<int64_t>{1, 1, 6, 8}));
}

const std::string kTestSet = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
const std::string kDemo = std::string(SCOREFLOW_SOURCE_DIR) + "/models/fashion_ddpm.pt";

TEST(DataPrepDemo, ShippedModelPadsTheShippedTestSetWithMinusOne) {
  if (!std::filesystem::exists(kTestSet)) GTEST_SKIP() << "apt-get install dataset-fashion-mnist";
  auto model = open_model(kDemo);
  const ModelMetadata& m = model->metadata();
  EXPECT_EQ(dataset_options(m).prep.describe(), R"({"pad": 2, "pad_value": -1})");
  const auto ds = io::open_dataset(kTestSet, dataset_options(m));
  const torch::Tensor x = ds->batch(0, 4), raw = io::open_dataset(kTestSet, {})->batch(0, 4);
  ASSERT_EQ(x.sizes(), (std::vector<int64_t>{4, 1, 32, 32}));
  torch::Tensor border = torch::ones({32, 32}, torch::kBool);
  border.slice(0, 2, 30).slice(1, 2, 30).fill_(false);
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(x[i][0].masked_select(border).eq(-1.0f).all().item<bool>());
    EXPECT_TRUE(x[i][0].slice(0, 2, 30).slice(1, 2, 30).equal(raw[i][0]));
  }
  // README: estimate-gamma with the shipped model and data, at tiny settings, in-process.
  GammaEstimation job;
  job.timesteps = {1, 500, 1000};
  job.num_images = 8;
  job.batch = 8;
  GammaTable table(gamma_meta_for(*model), chain_of(*model).num_steps());
  estimate_gamma(*model, *ds, job, table);
  for (int64_t t : job.timesteps) {
    ASSERT_TRUE(table.has(t)) << t;
    EXPECT_GT(table.entry(t).gamma, 0.0) << t;
    EXPECT_LE(table.entry(t).gamma, 1.0) << t;
  }
  // builtin:empirical with the model's preparation has the model's sample shape.
  auto empirical = make_empirical("builtin:empirical:data=" + kTestSet + ",limit=4,pad=2,pad_value=-1");
  EXPECT_EQ(empirical->metadata().shape, m.shape);
}

}  // namespace
}  // namespace scoreflow
