// One merge (scoreflow/jobs.h): the shard files of a job back into the file one run writes.
#include "scoreflow/jobs/merge.h"

#include <filesystem>

#include "scoreflow/error.h"
#include "scoreflow/features.h"
#include "scoreflow/fingerprint.h"
#include "scoreflow/jobs.h"
#include "scoreflow/metrics.h"

namespace scoreflow::jobs {
namespace {

torch::Tensor array(const std::map<std::string, io::NpyArray>& file, const std::string& key, const std::string& path) {
  auto it = file.find(key);
  if (it == file.end()) fail("'", path, "' has no array '", key, "'; is it a Gamma shard file?");
  return io::to_tensor(it->second);
}

/// Samples: the arrays of every shard joined in seed order, in the order `sample --npz` writes them.
nlohmann::json merge_samples(const ShardSet& set, const std::string& out) {
  const auto& files = set.files;
  const auto& paths = set.paths;
  std::vector<std::pair<std::string, io::NpyArray>> arrays;
  int64_t rows = 0;
  for (const char* key : {"samples", "seeds", "images", "labels", "cond_rows"}) {
    const bool first_has = files[0].count(key) > 0;
    std::vector<torch::Tensor> parts;
    for (size_t f = 0; f < files.size(); ++f) {
      auto it = files[f].find(key);
      if ((it != files[f].end()) != first_has)
        fail("'", paths[f], "' ", first_has ? "lacks" : "has", " array '", key, "' but '", paths[0], "' ",
             first_has ? "has it" : "does not");
      if (first_has) parts.push_back(io::to_tensor(it->second));
    }
    if (!first_has) continue;
    for (size_t f = 1; f < parts.size(); ++f)
      if (parts[f].dtype() != parts[0].dtype() || parts[f].sizes().slice(1) != parts[0].sizes().slice(1))
        fail("'", paths[f], "': array '", key, "' has shape ", parts[f].sizes(), " but '", paths[0], "' has ",
             parts[0].sizes());
    torch::Tensor all = torch::cat(parts);
    if (std::string(key) == "samples") rows = all.size(0);
    arrays.emplace_back(key, io::from_tensor(all));
  }
  if (arrays.empty() || arrays[0].first != "samples") fail("'", paths[0], "' has no array 'samples'");
  io::write_npz(out, arrays);
  return {{"num_samples", rows}};
}

/// Γ: every shard's batch statistics replayed in batch order, as one run adds them.
GammaTable merge_gamma(const ShardSet& set) {
  const auto& files = set.files;
  const auto& records = set.records;
  const auto& paths = set.paths;
  GammaMeta meta;
  int64_t num_steps = 0;
  try {
    const nlohmann::json& m = records[0].at("gamma_meta");
    meta.model = m.at("model").get<std::string>();
    meta.schedule = m.at("schedule").get<std::string>();
    meta.dataset = m.at("dataset").get<std::string>();
    meta.settings = m.at("settings").get<std::map<std::string, std::string>>();
    num_steps = records[0].at("num_steps").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    fail("'", paths[0], "': the Gamma shard record is incomplete (", e.what(), ")");
  }
  GammaBatches all;
  std::vector<int64_t> first_timesteps;
  for (size_t f = 0; f < files.size(); ++f) {
    const torch::Tensor t = array(files[f], "timesteps", paths[f]).to(torch::kLong).contiguous();
    const torch::Tensor count = array(files[f], "batch_count", paths[f]).to(torch::kLong).contiguous();
    const torch::Tensor sum = array(files[f], "batch_sum", paths[f]).to(torch::kFloat64).contiguous();
    const torch::Tensor m2 = array(files[f], "batch_m2", paths[f]).to(torch::kFloat64).contiguous();
    const int64_t T = t.numel();
    if (count.dim() != 2 || count.size(0) != T || sum.sizes() != count.sizes() || m2.sizes() != count.sizes())
      fail("'", paths[f], "': batch arrays have shapes ", count.sizes(), ", ", sum.sizes(), ", ", m2.sizes(), " for ",
           T, " timesteps");
    std::vector<int64_t> ts(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + T);
    if (f == 0) first_timesteps = ts;
    if (ts != first_timesteps) fail("'", paths[f], "' holds other timesteps than '", paths[0], "'");
    int64_t images = 0;
    const int64_t B = count.size(1);
    const int64_t* pc = count.data_ptr<int64_t>();
    const double *ps = sum.data_ptr<double>(), *pm = m2.data_ptr<double>();
    for (int64_t r = 0; r < T; ++r) {
      int64_t row_images = 0;
      for (int64_t b = 0; b < B; ++b) {
        GammaBatchStats s{pc[r * B + b], ps[r * B + b], pm[r * B + b]};
        row_images += s.count;
        all[ts[r]].push_back(s);
      }
      images = row_images;
    }
    const int64_t want = records[f].at("end").get<int64_t>() - records[f].at("begin").get<int64_t>();
    if (T > 0 && images != want)
      fail("'", paths[f], "' holds ", images, " images per timestep but its record says ", want);
  }
  GammaTable table(meta, num_steps);
  replay_gamma(all, table);
  return table;
}

/// Feature statistics: the shards' moment sums merged in shard order; mu/sigma as one run saves them.
nlohmann::json merge_fid(const ShardSet& set, const std::string& out) {
  eval::MomentAccumulator all;
  for (size_t f = 0; f < set.files.size(); ++f) {
    auto get = [&](const char* key) {
      auto it = set.files[f].find(key);
      if (it == set.files[f].end())
        fail("'", set.paths[f], "' has no array '", key, "'; is it an eval fid shard file?");
      return io::to_tensor(it->second);
    };
    const torch::Tensor count = get("count");
    if (count.numel() != 1) fail("'", set.paths[f], "': array 'count' must hold one number");
    const int64_t n = count.to(torch::kLong).item<int64_t>();
    const int64_t want = set.records[f].at("end").get<int64_t>() - set.records[f].at("begin").get<int64_t>();
    if (n != want) fail("'", set.paths[f], "' holds ", n, " rows but its record says ", want);
    all.merge(eval::MomentAccumulator::from_sums(n, get("shift"), get("sum"), get("outer")));
  }
  if (all.count() < 2) fail("the shards hold ", all.count(), " rows; a covariance needs at least 2");
  eval::save_feature_stats(out, all.mean(), all.covariance());
  return {{"count", all.count()}, {"feature_dim", all.dim()}};
}

}  // namespace

nlohmann::json merge_shards(const ShardSet& set, const std::string& out) {
  const std::string kind = set.kind();
  if (kind == "samples") return merge_samples(set, out);
  if (kind == "fid") return merge_fid(set, out);
  if (kind == "gamma") {
    GammaTable table = merge_gamma(set);
    table.save(out);
    return {{"timesteps", table.entries().size()}, {"clipped", table.num_clipped()}};
  }
  fail("'", set.paths[0], "' holds shards of kind '", kind, "'; this scoreflow merges samples, gamma and fid");
}

}  // namespace scoreflow::jobs

namespace scoreflow::jobs {
namespace {

/// The FD of merged feature statistics `out` against `ref`, else the shards' recorded reference.
void add_fd(MergeResult& r, const ShardSet& set, const std::string& out, std::string ref) {
  if (ref.empty() && set.records[0].contains("ref")) {
    const std::string path = set.records[0]["ref"].at("path").get<std::string>();
    std::error_code ec;
    if (std::filesystem::exists(path, ec) && io::hash_file(path) == set.records[0]["ref"].at("hash").get<std::string>())
      ref = path;
    else
      r.stale_ref = path;
  }
  if (ref.empty()) return;
  const auto [mu, sigma] = eval::load_feature_stats(out);
  const auto [ref_mu, ref_sigma] = eval::load_feature_stats(ref);
  if (ref_mu.size(0) != mu.size(0))
    fail("reference statistics ", ref, " have dimension ", ref_mu.size(0), " but the shards' features have ",
         mu.size(0));
  r.summary["reference"] = ref;
  r.summary["fd"] = eval::frechet_distance(mu, sigma, ref_mu, ref_sigma);
}

}  // namespace

MergeResult merge_files(const std::vector<std::string>& inputs, const std::string& out, const std::string& ref) {
  if (inputs.empty()) fail("no shard files to merge");
  for (const std::string& in : inputs)
    if (in == out) fail("the output '", out, "' is also an input");
  const ShardSet set = read_shard_set(inputs);
  const std::string kind = set.kind();
  if (!ref.empty() && kind != "fid") fail(Field{"ref"}, " is for eval fid shards; these are ", kind, " shards");
  MergeResult r;
  r.summary = merge_shards(set, out);
  if (kind == "fid") add_fd(r, set, out, ref);
  r.summary.update({{"kind", kind},
                    {"num_shards", set.records[0].at("num_shards")},
                    {"total", set.records[0].at("total")},
                    {"inputs", set.paths},
                    {"out", out}});
  return r;
}

}  // namespace scoreflow::jobs
