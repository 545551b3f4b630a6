// scoreflow merge: combines the files of a sharded job (sample --npz, estimate-gamma, eval fid
// --save-stats) into the file one unsharded run writes (jobs::merge_shards).
#include <cstdio>
#include <filesystem>
#include <regex>

#include "cli/common.h"
#include "io/fsutil.h"
#include "scoreflow/error.h"
#include "scoreflow/features.h"
#include "scoreflow/jobs.h"
#include "scoreflow/metrics.h"

namespace scoreflow::cli {
namespace {

struct MergeOptions {
  std::vector<std::string> files;
  std::string out, ref;
  bool json = false;
};

/// FD of merged feature statistics against the reference the shards were run with (or `ref`).
void add_fd(nlohmann::json& doc, const jobs::ShardSet& set, const std::string& out, std::string ref) {
  if (ref.empty() && set.records[0].contains("ref")) {
    const std::string path = set.records[0]["ref"].at("path").get<std::string>();
    std::error_code ec;
    if (std::filesystem::exists(path, ec) && io::hash_file(path) == set.records[0]["ref"].at("hash").get<std::string>())
      ref = path;
    else
      std::fprintf(stderr, "note: the shards' reference %s is gone or changed; give --ref to compute the FD\n",
                   path.c_str());
  }
  if (ref.empty()) return;
  const auto [mu, sigma] = eval::load_feature_stats(out);
  const auto [ref_mu, ref_sigma] = eval::load_feature_stats(ref);
  if (ref_mu.size(0) != mu.size(0))
    fail("reference statistics ", ref, " have dimension ", ref_mu.size(0), " but the shards' features have ",
         mu.size(0));
  doc["reference"] = ref;
  doc["fd"] = metrics::frechet_distance(mu, sigma, ref_mu, ref_sigma);
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
  const jobs::ShardSet set = jobs::read_shard_set(inputs);
  const std::string kind = set.kind();
  if (!o.ref.empty() && kind != "fid") fail("--ref is for eval fid shards; these are ", kind, " shards");
  nlohmann::json doc = jobs::merge_shards(set, out);
  if (kind == "fid") add_fd(doc, set, out, o.ref);
  const auto& sorted_records = set.records;
  const auto& sorted_paths = set.paths;
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
