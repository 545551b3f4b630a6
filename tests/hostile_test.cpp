// Hostile inputs (scripts/make_bad_inputs.py → fixtures/bad/): every command that reads a file is
// given each broken one and must exit non-zero with exactly one stderr line `error: ...` naming
// the file and the problem — no crash signal, no output file left behind.
//
// Set SCOREFLOW_HOSTILE_REPORT=FILE to get the markdown table of docs/reliability.md.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "tests/support/cli_run.h"

namespace fs = std::filesystem;
using scoreflow::testing_cli::Outcome;
using scoreflow::testing_cli::run_cli;

namespace {

const std::string kBad = std::string(SCOREFLOW_FIXTURE_DIR) + "/bad";

/// What the error line must say about each input (besides naming it). A corpus file without an
/// entry here fails the test, so the corpus and the expectations cannot drift apart.
const std::map<std::string, std::string> kProblem = {
    // models/
    {"empty.pt", "not a TorchScript archive"},
    {"random_bytes.pt", "not a TorchScript archive"},
    {"random_after_zip_magic.pt", "could not be loaded as TorchScript"},
    {"truncated_half.pt", "could not be loaded as TorchScript"},
    {"truncated_tail.pt", "could not be loaded as TorchScript"},
    {"corrupt_middle.pt", "could not be loaded as TorchScript"},
    {"plain_zip.pt", "could not be loaded as TorchScript"},
    {"a_directory.pt", "not a TorchScript archive"},
    {"meta_not_json.pt", "is not valid JSON"},
    {"meta_is_list.pt", "must be a JSON object"},
    {"meta_empty_string.pt", "lacks: prediction, schedule, time_input, shape"},
    {"meta_shape_string.pt", "metadata field 'shape'"},
    {"meta_shape_negative.pt", "metadata field 'shape'"},
    {"meta_shape_huge.pt", "metadata field 'shape'"},
    {"meta_shape_float.pt", "metadata field 'shape'"},
    {"meta_schedule_string.pt", "'schedule' must be an object"},
    {"meta_schedule_unknown.pt", "unknown value 'cosmic'"},
    {"meta_beta_string.pt", "'schedule.beta_start' must be a number"},
    {"meta_train_steps_zero.pt", "num_train_steps"},
    {"meta_edm_sigma_inverted.pt", "sigma_min"},
    {"meta_prediction_unknown.pt", "unknown prediction 'epsilon'"},
    {"meta_prediction_number.pt", "'prediction' must be a string"},
    {"meta_unknown_field.pt", "metadata field 'colour' is unknown"},
    {"meta_classes_negative.pt", "'num_classes' must be a non-negative integer"},
    {"meta_data_range_inverted.pt", "'data_range' must have lo < hi"},
    {"meta_missing.pt", "has no scoreflow.json metadata"},
    {"forward_throws.pt", "hostile forward refuses to run"},
    {"forward_nan_below.pt", "NaN or Inf at sigma="},
    {"forward_inf.pt", "NaN or Inf at sigma="},
    {"forward_tuple.pt", "forward returned Tuple, expected a Tensor"},
    {"forward_wrong_rank.pt", "forward returned shape"},
    // noise/ (--init-noise)
    {"empty.npz", "not a .npz/zip archive"},
    {"random_bytes.npz", "not a .npz/zip archive"},
    {"truncated.npz", ".npz"},
    {"no_noise_key.npz", "has no array 'noise'"},
    {"wrong_shape.npz", "array 'noise' has shape"},
    {"too_few_rows.npz", "array 'noise' has shape"},
    {"string_dtype.npz", "unsupported dtype"},
    {"complex_dtype.npz", "unsupported dtype"},
    {"int_dtype.npz", "array 'noise' has dtype <i8; initial noise must be floating point"},
    {"big_endian.npz", "big-endian"},
    {"nan_noise.npz", "has NaN or Inf values"},
    {"bad_crc.npz", "CRC-32 mismatch"},
    {"lying_npy_header.npz", "CRC-32 mismatch"},
    // data/ (builtin:empirical:data=...)
    {"img_empty", "file is empty"},
    {"img_random", "cannot decode image"},
    {"img_truncated", "cannot decode image"},
    {"img_huge_header", "absurd"},
    {"img_zero_width", "cannot decode image"},
    {"img_mixed_sizes", "b.png"},
    {"img_truncated_bmp", "truncated BMP"},
    {"img_no_images", "holds no .png"},
    {"idx_empty.idx", "truncated"},
    {"idx_lying_count.idx", "header lies"},
    {"idx_huge_dims.idx", "impossible"},
    {"idx_truncated_header.idx", "truncated inside its header"},
    {"idx_bad_magic.idx", "not an idx file"},
    {"idx_float_type.idx", "element type 0xd is not supported"},
    {"idx_labels_1d.idx", "label"},
    {"idx_trailing_bytes.idx", "data continues after"},
    {"idx_zero_images.idx", "impossible"},
    {"idx_gz_truncated.idx.gz", "not an idx file"},
    {"idx_gz_cut.idx.gz", "truncated"},
    {"npy_truncated.npy", "truncated .npy data"},
    {"npy_int64.npy", "is not an image type"},
    {"npy_fortran.npy", "Fortran-order"},
    {"npy_1d.npy", "expected images"},
    {"npz_wrong_dtype.npz", "is not an image type"},
    {"npz_two_unnamed_keys.npz", "key"},
    {"npz_truncated.npz", ".npz"},
    {"npz_no_arrays.npz", "no 'images' or 'arr_0' array"},
    {"npz_bad_channels.npz", "cannot tell channels"},
    {"npz_empty_set.npz", "empty"},
};

std::vector<std::string> corpus(const std::string& sub) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(kBad + "/" + sub)) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

/// Regular files anywhere under `dir` (outputs, temporaries, chunk stores).
std::vector<std::string> files_under(const std::string& dir) {
  std::vector<std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (!e.is_directory()) out.push_back(e.path().string());
  return out;
}

class Hostile : public ::testing::Test {
 protected:
  static std::ofstream& report() {
    static std::ofstream out;
    static bool opened = false;
    if (!opened) {
      opened = true;
      if (const char* path = std::getenv("SCOREFLOW_HOSTILE_REPORT")) out.open(path, std::ios::app);
    }
    return out;
  }

  /// Runs `args` (where OUT stands for a fresh output directory) and checks the contract.
  void refuse(const std::string& input, const std::string& command, std::vector<std::string> args) {
    const std::string name = fs::path(input).filename().string();
    auto it = kProblem.find(name);
    ASSERT_NE(it, kProblem.end()) << "no expectation for corpus file " << name << "; add one to kProblem";
    const std::string out_dir = ::testing::TempDir() + "/hostile_out_" + std::to_string(::getpid());
    fs::remove_all(out_dir);
    fs::create_directories(out_dir);
    for (auto& a : args) {
      for (size_t at; (at = a.find("OUT")) != std::string::npos;) a.replace(at, 3, out_dir);
    }
    const Outcome r = run_cli(args, out_dir + ".log");
    const std::string where = command + " with " + input + "\nstderr: " + r.err;
    EXPECT_EQ(r.signal, 0) << "crashed with signal " << r.signal << ": " << where;
    EXPECT_GT(r.code, 0) << where;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << where;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "exactly one line: " << where;
    EXPECT_NE(r.err.find(name), std::string::npos) << "error does not name the file: " << where;
    EXPECT_NE(r.err.find(it->second), std::string::npos) << "error does not say '" << it->second << "': " << where;
    EXPECT_EQ(files_under(out_dir), std::vector<std::string>{}) << "output left behind: " << where;
    std::string line = r.err.substr(0, r.err.find('\n'));
    for (size_t at; (at = line.find(kBad + "/")) != std::string::npos;) line.replace(at, kBad.size() + 1, "");
    for (size_t at = 0; (at = line.find('|', at)) != std::string::npos; at += 2) line.replace(at, 1, "\\|");
    if (report())
      report() << "| `" << name << "` | " << command << " | " << r.code << " | " << line << " |" << std::endl;
    fs::remove_all(out_dir);
  }
};

const std::vector<std::string> kSampleTail = {"--sampler", "euler",   "--steps", "3",
                                              "--seeds",   "0-1",     "--npz",   "OUT/s.npz",
                                              "--out-dir", "OUT/png", "--out",   "OUT/grid.png"};

}  // namespace

TEST_F(Hostile, ModelFiles) {
  for (const std::string& m : corpus("models")) {
    std::vector<std::string> sample{"sample", "--model", m};
    sample.insert(sample.end(), kSampleTail.begin(), kSampleTail.end());
    refuse(m, "sample", sample);
    refuse(m, "info", {"info", "--model", m});
  }
}

TEST_F(Hostile, InitNoiseArchives) {
  for (const std::string& n : corpus("noise")) {
    std::vector<std::string> sample{"sample", "--model", "builtin:gaussian:shape=1x8x8", "--init-noise", n};
    sample.insert(sample.end(), kSampleTail.begin(), kSampleTail.end());
    refuse(n, "sample --init-noise", sample);
  }
}

TEST_F(Hostile, Datasets) {
  for (const std::string& d : corpus("data")) {
    const std::string spec = "builtin:empirical:data=" + d;
    std::vector<std::string> sample{"sample", "--model", spec};
    sample.insert(sample.end(), kSampleTail.begin(), kSampleTail.end());
    refuse(d, "sample --model builtin:empirical:data=…", sample);
    refuse(d, "info --model builtin:empirical:data=…", {"info", "--model", spec});
  }
}
