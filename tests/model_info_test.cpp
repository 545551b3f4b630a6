// The model-information report (scoreflow/model_info.h) that `scoreflow info` prints: its fields
// against the metadata the fixtures declare, the dry forward and decode, and the CPU path line.
#include "scoreflow/model_info.h"

#include <gtest/gtest.h>
#include <torch/script.h>

#include <cmath>

#include "scoreflow/error.h"
#include "support/io_test_util.h"
#include "tests/support/thread_count.h"

using namespace scoreflow;

namespace {

class ModelInfoTest : public testing_io::TempDirTest {
 protected:
  std::string save(torch::jit::Module& m, const std::string& name, const std::string& meta) {
    const std::string file = path(name);
    m.save(file, {{"scoreflow.json", meta}});
    return file;
  }
};

/// The report's text line for `key` ("" when there is none).
std::string text_line(const std::string& text, const std::string& key) {
  const size_t at = text.find("\n" + key + " ");
  if (at == std::string::npos) return text.rfind(key + " ", 0) == 0 ? text.substr(0, text.find('\n')) : "";
  return text.substr(at + 1, text.find('\n', at + 1) - at - 1);
}

}  // namespace

TEST(ModelInfo, BuiltinReportsItsMetadataAndADryForward) {
  std::shared_ptr<const Model> model = open_model("builtin:gmm:shape=1x6x6,k=3");
  const ModelInfo info = model_info(model);
  const nlohmann::json& j = info.json;
  const ModelMetadata& m = model->metadata();
  EXPECT_EQ(j["model"], "builtin:gmm:shape=1x6x6,k=3");
  EXPECT_EQ(j["shape"], nlohmann::json({1, 6, 6}));
  EXPECT_EQ(j["num_classes"], 0);
  EXPECT_EQ(j["sigma_min"].get<double>(), m.schedule.sigma_min());
  EXPECT_EQ(j["sigma_max"].get<double>(), m.schedule.sigma_max());
  EXPECT_EQ(j["dry_forward"]["output_shape"], nlohmann::json({2, 1, 6, 6}));  // a batch of 2
  EXPECT_DOUBLE_EQ(j["dry_forward"]["sigma"].get<double>(), std::sqrt(m.schedule.sigma_min() * m.schedule.sigma_max()));
  EXPECT_TRUE(j["conditions"].empty());
  EXPECT_TRUE(j["decoded_image_shape"].is_null());
  EXPECT_FALSE(j.contains("cpu_path"));  // no note given
  // The text: aligned "key  value" lines, the same values.
  EXPECT_EQ(text_line(info.text, "model"), "model        builtin:gmm:shape=1x6x6,k=3");
  EXPECT_EQ(text_line(info.text, "shape"), "shape        [1, 6, 6]");
  EXPECT_EQ(text_line(info.text, "classes"), "classes      0");
  EXPECT_EQ(text_line(info.text, "features"), "features     (none)");
  EXPECT_EQ(info.text.find("condition "), std::string::npos);
  EXPECT_EQ(info.text.substr(info.text.rfind("dry forward")).rfind("dry forward  ok at sigma=", 0), 0u) << info.text;
  EXPECT_EQ(info.text.back(), '\n');
  // Builtins have no CPU fast path.
  LoadOptions load;
  load.optimize = true;
  EXPECT_EQ(cpu_path_note(*model, load), "");
  EXPECT_FALSE(has_cpu_fast_path(*model));
}

TEST_F(ModelInfoTest, ConditionsAndTheDecoderAreListedAndRunOnce) {
  torch::jit::Module m("LatentNet");
  m.define(
      "def forward(self, x, t, pooled, ids):\n"
      "    return 0.0 * x + pooled.view(-1, 1, 1, 1)\n"
      "\n"
      "def decode(self, z):\n"
      "    return z[:, 0:3].repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)\n");
  const std::string file =
      save(m, "latent.pt",
           R"({"prediction":"x0","schedule":{"type":"edm"},"time_input":"sigma","shape":[4,2,2],)"
           R"("conditions":[{"name":"pooled","shape":[]},{"name":"ids","shape":[5],"dtype":"int64"}],)"
           R"("decoder":{"method":"decode","scale":0.5,"image_shape":[3,4,4],"image_range":[-1,1]}})");
  LoadOptions plain;
  plain.cpu_teams = 1;  // the module's note alone (the teams' part is checked below)
  std::shared_ptr<const Model> model = open_model(file, "", {}, torch::kCPU, plain);
  const ModelInfo info = model_info(model, "plain module (test)");
  const nlohmann::json& j = info.json;
  ASSERT_EQ(j["conditions"].size(), 2u);
  EXPECT_EQ(j["conditions"][0],
            nlohmann::json({{"name", "pooled"}, {"shape", nlohmann::json::array()}, {"dtype", "float32"}}));
  EXPECT_EQ(j["conditions"][1], nlohmann::json({{"name", "ids"}, {"shape", {5}}, {"dtype", "int64"}}));
  EXPECT_EQ(j["decoded_image_shape"], nlohmann::json({3, 4, 4}));
  EXPECT_EQ(j["metadata"]["decoder"]["method"], "decode");  // the archive's own JSON
  EXPECT_EQ(j["cpu_path"]["note"], "plain module (test)");
  EXPECT_EQ(j["cpu_path"]["optimized"], false);
  EXPECT_EQ(text_line(info.text, "condition"), "condition    pooled [] float32");
  EXPECT_NE(info.text.find("\ncondition    ids [5] int64\n"), std::string::npos) << info.text;
  EXPECT_EQ(text_line(info.text, "decoder"), "decoder      decode -> images [3,4,4] (dry decode ok)");
  EXPECT_EQ(text_line(info.text, "cpu path"), "cpu path     plain module (test)");
  // Opened without the fast path: the caller's sentence for that.
  EXPECT_TRUE(has_cpu_fast_path(*model));
  EXPECT_EQ(cpu_path_note(*model, plain, "off by request"), "off by request");
  // Automatic thread teams (the default) on 16 threads: calls of 32 or more rows, 4 teams of 4.
  const testing_support::ThreadCount sixteen(16);
  EXPECT_EQ(cpu_path_note(*open_model(file, "", {}, torch::kCPU, LoadOptions()), plain, "off"),
            "off; calls of 32 or more rows split over up to 4 thread teams of 4 threads");
}

TEST_F(ModelInfoTest, ANonFiniteDryForwardIsRefused) {
  torch::jit::Module m("NanNet");
  m.define("def forward(self, x, t):\n    return x * float('nan')\n");
  const std::string file =
      save(m, "nan.pt", R"({"prediction":"x0","schedule":{"type":"edm"},"time_input":"sigma","shape":[2]})");
  EXPECT_THROW(model_info(open_model(file)), Error);
}
