// scoreflow merge: combines the files of a sharded job (sample --npz, estimate-gamma, eval fid
// --save-stats; see cli/shard.h) into the file one unsharded run writes.
#include <cstdio>
#include <filesystem>
#include <regex>

#include "cli/common.h"
#include "cli/gamma_shard.h"
#include "cli/shard.h"
#include "io/fsutil.h"
#include "scoreflow/error.h"
#include "scoreflow/features.h"
#include "scoreflow/metrics.h"

namespace scoreflow::cli {
namespace {

struct MergeOptions {
  std::vector<std::string> files;
  std::string out, ref;
  bool json = false;
};

/// Samples: the arrays of every shard joined in seed order, in the order `sample --npz` writes them.
nlohmann::json merge_samples(const std::vector<std::map<std::string, io::NpyArray>>& files,
                             const std::vector<std::string>& paths, const std::string& out) {
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

/// Feature statistics: the shards' sums merged in shard order; mu/sigma as --save-stats writes them.
nlohmann::json merge_fid(const std::vector<std::map<std::string, io::NpyArray>>& files,
                         const std::vector<nlohmann::json>& records, const std::vector<std::string>& paths,
                         const std::string& out, std::string ref) {
  metrics::MomentAccumulator all;
  for (size_t f = 0; f < files.size(); ++f) {
    auto get = [&](const char* key) {
      auto it = files[f].find(key);
      if (it == files[f].end()) fail("'", paths[f], "' has no array '", key, "'; is it an eval fid shard file?");
      return io::to_tensor(it->second);
    };
    const torch::Tensor count = get("count");
    if (count.numel() != 1) fail("'", paths[f], "': array 'count' must hold one number");
    const int64_t n = count.to(torch::kLong).item<int64_t>();
    const int64_t want = records[f].at("end").get<int64_t>() - records[f].at("begin").get<int64_t>();
    if (n != want) fail("'", paths[f], "' holds ", n, " rows but its record says ", want);
    all.merge(metrics::MomentAccumulator::from_sums(n, get("shift"), get("sum"), get("outer")));
  }
  if (all.count() < 2) fail("the shards hold ", all.count(), " rows; a covariance needs at least 2");
  const torch::Tensor mu = all.mean(), sigma = all.covariance();
  eval::save_feature_stats(out, mu, sigma);
  nlohmann::json doc = {{"count", all.count()}, {"feature_dim", all.dim()}};
  // FD against the reference the shards were run with (--ref here overrides it).
  if (ref.empty() && records[0].contains("ref")) {
    const std::string path = records[0]["ref"].at("path").get<std::string>();
    std::error_code ec;
    if (std::filesystem::exists(path, ec) && io::hash_file(path) == records[0]["ref"].at("hash").get<std::string>())
      ref = path;
    else
      std::fprintf(stderr, "note: the shards' reference %s is gone or changed; give --ref to compute the FD\n",
                   path.c_str());
  }
  if (!ref.empty()) {
    const auto [ref_mu, ref_sigma] = eval::load_feature_stats(ref);
    if (ref_mu.size(0) != all.dim())
      fail("reference statistics ", ref, " have dimension ", ref_mu.size(0), " but the shards' features have ",
           all.dim());
    doc["reference"] = ref;
    doc["fd"] = metrics::frechet_distance(mu, sigma, ref_mu, ref_sigma);
  }
  return doc;
}

void run(const MergeOptions& o) {
  auto start = std::chrono::steady_clock::now();
  std::vector<std::string> inputs = o.files;
  std::string out = o.out;
  if (out.empty()) {
    if (inputs.size() < 2) fail("give the output and the shard files: scoreflow merge OUT IN... (or --out OUT IN...)");
    out = inputs.front();
    inputs.erase(inputs.begin());
  }
  if (inputs.empty()) fail("no shard files to merge");
  static const std::regex shard_name(R"(\.shard-[0-9]+-of-[0-9]+\.[A-Za-z0-9]+$)");
  if (std::regex_search(out, shard_name))
    fail("the output '", out, "' is named like a shard file; give the output first: scoreflow merge OUT IN...");
  for (const std::string& in : inputs)
    if (in == out) fail("the output '", out, "' is also an input");
  io::check_outputs({{o.out.empty() ? "OUT" : "--out", out}});
  std::vector<std::map<std::string, io::NpyArray>> files;
  std::vector<nlohmann::json> records;
  for (const std::string& in : inputs) {
    files.push_back(io::read_npz(in));
    records.push_back(read_record(files.back(), in));
  }
  const std::vector<size_t> order = check_shard_set(records, inputs);
  std::vector<std::map<std::string, io::NpyArray>> sorted_files;
  std::vector<nlohmann::json> sorted_records;
  std::vector<std::string> sorted_paths;
  for (size_t f : order) {
    sorted_files.push_back(std::move(files[f]));
    sorted_records.push_back(records[f]);
    sorted_paths.push_back(inputs[f]);
  }
  const std::string kind = sorted_records[0].at("kind").get<std::string>();
  if (!o.ref.empty() && kind != "fid") fail("--ref is for eval fid shards; these are ", kind, " shards");
  nlohmann::json doc;
  if (kind == "samples") {
    doc = merge_samples(sorted_files, sorted_paths, out);
  } else if (kind == "gamma") {
    analytic::GammaTable table = merge_gamma_shards(sorted_files, sorted_records, sorted_paths);
    table.save(out);
    doc = {{"timesteps", table.entries().size()}, {"clipped", table.num_clipped()}};
  } else if (kind == "fid") {
    doc = merge_fid(sorted_files, sorted_records, sorted_paths, out, o.ref);
  } else {
    fail("'", sorted_paths[0], "' holds shards of kind '", kind, "'; this scoreflow merges samples, gamma and fid");
  }
  doc.update({{"command", "merge"},
              {"kind", kind},
              {"num_shards", sorted_records[0].at("num_shards")},
              {"total", sorted_records[0].at("total")},
              {"inputs", sorted_paths},
              {"out", out},
              {"wall_seconds", seconds_since(start)}});
  if (o.json) return print_json(doc);
  std::printf("merged %zu %s shards (%lld items) into %s\n", sorted_paths.size(), kind.c_str(),
              static_cast<long long>(sorted_records[0].at("total").get<int64_t>()), out.c_str());
  if (doc.contains("fd")) std::printf("FD %.6f\n", doc["fd"].get<double>());
}

}  // namespace

void register_merge(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "merge", "combine the shard files of a --shard job (sample --npz, estimate-gamma, eval fid) into one result");
  static MergeOptions o;
  sub->add_option("files", o.files, "OUT then the shard files (any order); with --out, only the shard files")
      ->required();
  sub->add_option("--out", o.out, "the merged file (instead of the first positional argument)");
  sub->add_option("--ref", o.ref, "eval fid shards: reference statistics .npz for the FD (default: the shards' --ref)");
  sub->add_flag("--json", o.json, "print one JSON document");
  set_action(sub, [] { run(o); });
}

}  // namespace scoreflow::cli
