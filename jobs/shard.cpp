// Shard plans and shard records (scoreflow/jobs.h).
#include <algorithm>
#include <cstdlib>
#include <optional>

#include "scoreflow/error.h"
#include "scoreflow/jobs.h"

namespace scoreflow::jobs {
namespace {

constexpr const char* kRecordFormat = "scoreflow.shard/1";

/// A non-negative decimal integer, nothing else (no sign, no spaces, no trailing text).
std::optional<int64_t> parse_count(const std::string& text) {
  if (text.empty() || text.size() > 18) return std::nullopt;
  int64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (!v) return std::nullopt;
  return std::string(v);
}

Shard from_env_pair(const char* rank, const char* size, const std::string& r, const std::string& s) {
  const std::string what = std::string(rank) + "/" + size;
  Shard shard = parse_shard(r + "/" + s, what);
  shard.source = what;
  return shard;
}

}  // namespace

std::string Shard::label() const { return "shard-" + std::to_string(index) + "-of-" + std::to_string(count); }

nlohmann::json Shard::to_json() const { return {{"index", index}, {"count", count}, {"source", source}}; }

Shard parse_shard(const std::string& text, const std::string& source) {
  // An explicit choice is the field `shard` (a front end shows its own name for it); launcher
  // variables are named as they are.
  auto bad = [&](const auto&... rest) {
    if (source == "shard") fail(Field{"shard"}, " '", text, "'", rest...);
    fail(source, " '", text, "'", rest...);
  };
  const size_t slash = text.find('/');
  if (slash == std::string::npos) bad(" is malformed; expected i/n with 0 <= i < n (e.g. 0/4)");
  const auto i = parse_count(text.substr(0, slash)), n = parse_count(text.substr(slash + 1));
  if (!i || !n) bad(" is malformed; expected i/n with 0 <= i < n (e.g. 0/4)");
  if (*n < 1) bad(": the number of shards must be >= 1");
  if (*i >= *n) bad(": shard index ", *i, " must be < the number of shards ", *n, " (0-based)");
  Shard shard;
  shard.index = *i;
  shard.count = *n;
  shard.source = source;
  return shard;
}

Shard resolve_shard(const std::string& shard_text) {
  if (!shard_text.empty()) return parse_shard(shard_text, "shard");
  // torchrun, then Open MPI, then srun tasks, then a Slurm job array; a launcher that reports a
  // single process gives way to the next (srun -n1 inside a job array, say).
  const std::pair<const char*, const char*> pairs[] = {
      {"RANK", "WORLD_SIZE"}, {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"}, {"SLURM_PROCID", "SLURM_NTASKS"}};
  for (const auto& [rank, size] : pairs) {
    const auto r = env(rank), s = env(size);
    if (!r || !s) continue;
    Shard shard = from_env_pair(rank, size, *r, *s);
    if (shard.sharded()) return shard;
  }
  const auto id = env("SLURM_ARRAY_TASK_ID"), count = env("SLURM_ARRAY_TASK_COUNT");
  if (id && count) {
    const auto id_v = parse_count(*id), min_v = parse_count(env("SLURM_ARRAY_TASK_MIN").value_or("0")),
               step_v = parse_count(env("SLURM_ARRAY_TASK_STEP").value_or("1"));
    if (!id_v || !min_v || !step_v || *step_v < 1 || *id_v < *min_v)
      fail("SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_MIN/SLURM_ARRAY_TASK_STEP '", *id, "/",
           env("SLURM_ARRAY_TASK_MIN").value_or("(unset)"), "/", env("SLURM_ARRAY_TASK_STEP").value_or("(unset)"),
           "' are malformed; give ", Field{"shard"}, " i/n");
    Shard shard = parse_shard(std::to_string((*id_v - *min_v) / *step_v) + "/" + *count,
                              "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT");
    if (shard.sharded()) return shard;
  }
  return Shard{};
}

std::pair<int64_t, int64_t> shard_range(int64_t items, int64_t block, int64_t index, int64_t count) {
  if (block < 1) fail(Field{"batch"}, " must be >= 1, got ", block);
  if (count < 1 || index < 0 || index >= count) fail("shard ", index, "/", count, " is out of range");
  const int64_t blocks = (items + block - 1) / block;
  const int64_t first = index * blocks / count, last = (index + 1) * blocks / count;
  return {std::min(items, first * block), std::min(items, last * block)};
}

std::string shard_path(const std::string& path, const Shard& shard, const std::string& ext) {
  const size_t slash = path.rfind('/');
  const size_t name_at = slash == std::string::npos ? 0 : slash + 1;
  const size_t dot = path.rfind('.');
  const bool has_ext = dot != std::string::npos && dot > name_at;
  const std::string stem = has_ext ? path.substr(0, dot) : path;
  const std::string tail = !ext.empty() ? ext : (has_ext ? path.substr(dot) : "");
  return stem + "." + shard.label() + tail;
}

nlohmann::json shard_record(const std::string& kind, const Shard& shard, const io::Settings& settings, int64_t begin,
                            int64_t end, int64_t total) {
  nlohmann::json s = nlohmann::json::array();
  for (const auto& [k, v] : settings) s.push_back({k, v});
  return {{"format", kRecordFormat},
          {"kind", kind},
          {"shard", shard.index},
          {"num_shards", shard.count},
          {"source", shard.source},
          {"begin", begin},
          {"end", end},
          {"total", total},
          {"settings", s}};
}

io::NpyArray record_array(const nlohmann::json& record) {
  const std::string text = record.dump();
  return io::NpyArray{"|u1", {static_cast<int64_t>(text.size())}, std::vector<uint8_t>(text.begin(), text.end())};
}

nlohmann::json read_record(const std::map<std::string, io::NpyArray>& arrays, const std::string& path) {
  auto it = arrays.find(kShardKey);
  if (it == arrays.end())
    fail("'", path, "' is not a shard file (no '", kShardKey, "' record); merge takes the files of a sharded run");
  try {
    nlohmann::json r = nlohmann::json::parse(it->second.data.begin(), it->second.data.end());
    if (r.at("format") != kRecordFormat) fail("format ", r.at("format").dump());
    for (const char* key : {"kind", "shard", "num_shards", "begin", "end", "total", "settings"}) r.at(key);
    return r;
  } catch (const std::exception& e) {
    fail("'", path, "': the shard record is unreadable (", e.what(), ")");
  }
}

std::vector<size_t> check_shard_set(const std::vector<nlohmann::json>& records, const std::vector<std::string>& paths) {
  if (records.empty()) fail("merge needs at least one shard file");
  const nlohmann::json& first = records[0];
  const int64_t n = first.at("num_shards").get<int64_t>();
  std::vector<int64_t> holder(static_cast<size_t>(std::max<int64_t>(n, 0)), -1);
  for (size_t f = 0; f < records.size(); ++f) {
    const nlohmann::json& r = records[f];
    if (r.at("kind") != first.at("kind"))
      fail("'", paths[f], "' holds ", r.at("kind").get<std::string>(), " but '", paths[0], "' holds ",
           first.at("kind").get<std::string>(), "; merge shards of one job");
    if (r.at("num_shards").get<int64_t>() != n || r.at("total") != first.at("total"))
      fail("'", paths[f], "' is shard ", r.at("shard").get<int64_t>(), " of ", r.at("num_shards").get<int64_t>(), " (",
           r.at("total").get<int64_t>(), " items) but '", paths[0], "' is of ", n, " (",
           first.at("total").get<int64_t>(), " items); merge shards of one job");
    const auto& a = first.at("settings");
    const auto& b = r.at("settings");
    for (size_t k = 0; k < std::max(a.size(), b.size()); ++k) {
      const std::string name = k < a.size() ? a[k][0].get<std::string>() : b[k][0].get<std::string>();
      const std::string va = k < a.size() ? a[k][1].get<std::string>() : "(not set)";
      const std::string vb = k < b.size() && b[k][0] == name ? b[k][1].get<std::string>() : "(not set)";
      if (va != vb)
        fail("'", paths[f], "' comes from another run than '", paths[0], "': ", name, " is '", vb, "' there but '", va,
             "' in '", paths[0], "'");
    }
    const int64_t i = r.at("shard").get<int64_t>();
    if (i < 0 || i >= n) fail("'", paths[f], "': shard index ", i, " is outside 0..", n - 1);
    if (holder[i] >= 0) fail("shard ", i, " of ", n, " is given twice: '", paths[holder[i]], "' and '", paths[f], "'");
    holder[i] = static_cast<int64_t>(f);
  }
  std::vector<std::string> missing;
  for (int64_t i = 0; i < n; ++i)
    if (holder[i] < 0) missing.push_back(std::to_string(i));
  if (!missing.empty())
    fail("incomplete shard set: shard", missing.size() > 1 ? "s " : " ", join(missing), " of ", n,
         " missing (shards count from 0; give all ", n, " files)");
  std::vector<size_t> order;
  int64_t covered = 0;
  for (int64_t i = 0; i < n; ++i) {
    const nlohmann::json& r = records[holder[i]];
    const int64_t b = r.at("begin").get<int64_t>(), e = r.at("end").get<int64_t>();
    if (b != covered || e < b)
      fail("'", paths[holder[i]], "' covers items [", b, ", ", e, ") but the shards before it end at ", covered,
           ": the shards overlap or leave a gap");
    covered = e;
    order.push_back(static_cast<size_t>(holder[i]));
  }
  if (covered != first.at("total").get<int64_t>())
    fail("the shards cover ", covered, " of ", first.at("total").get<int64_t>(), " items");
  return order;
}

ShardSet read_shard_set(const std::vector<std::string>& paths) {
  std::vector<std::map<std::string, io::NpyArray>> files;
  std::vector<nlohmann::json> records;
  for (const std::string& path : paths) {
    files.push_back(io::read_npz(path));
    records.push_back(read_record(files.back(), path));
  }
  ShardSet set;
  for (size_t f : check_shard_set(records, paths)) {
    set.files.push_back(std::move(files[f]));
    set.records.push_back(std::move(records[f]));
    set.paths.push_back(paths[f]);
  }
  return set;
}

}  // namespace scoreflow::jobs
