// scoreflow merge: combines the files of a sharded job (sample --npz, estimate-gamma, eval fid
// --save-stats) into the file one unsharded run writes (jobs::merge_files).
#include "scoreflow/jobs/merge.h"

#include <algorithm>
#include <cstdio>
#include <regex>

#include "cli/common.h"
#include "io/fsutil.h"
#include "scoreflow/error.h"

namespace scoreflow::cli {
namespace {

struct MergeOptions {
  std::vector<std::string> files;
  std::string out, ref;
  bool json = false;
};

void run(const MergeOptions& o) {
  auto start = std::chrono::steady_clock::now();
  std::vector<std::string> inputs = o.files;
  std::string out = o.out;
  if (out.empty()) {
    if (inputs.size() < 2) fail("give the output and the shard files: scoreflow merge OUT IN... (or --out OUT IN...)");
    out = inputs.front();
    inputs.erase(inputs.begin());
  }
  static const std::regex shard_name(R"(\.shard-[0-9]+-of-[0-9]+\.[A-Za-z0-9]+$)");
  if (std::regex_search(out, shard_name))
    fail("the output '", out, "' is named like a shard file; give the output first: scoreflow merge OUT IN...");
  if (std::find(inputs.begin(), inputs.end(), out) == inputs.end())
    io::check_outputs({{o.out.empty() ? "OUT" : "--out", out}});
  const jobs::MergeResult r = jobs::merge_files(inputs, out, o.ref);
  if (!r.stale_ref.empty())
    std::fprintf(stderr, "note: the shards' reference %s is gone or changed; give --ref to compute the FD\n",
                 r.stale_ref.c_str());
  nlohmann::json doc = r.summary;
  doc.update({{"command", "merge"}, {"wall_seconds", seconds_since(start)}});
  if (o.json) return print_json(doc);
  std::printf("merged %zu %s shards (%lld items) into %s\n", doc["inputs"].size(),
              doc["kind"].get<std::string>().c_str(), static_cast<long long>(doc["total"].get<int64_t>()), out.c_str());
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
