#include "models/cpu_optimize.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/passes/subgraph_rewrite.h>
#include <torch/library.h>
#include <torch/version.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "models/group_norm_silu.h"
#include "models/onednn_fusion.h"
#include "models/winograd_conv.h"
#include "scoreflow/checkpoint.h"
#include "scoreflow/cpu_fast_path.h"
#include "scoreflow/error.h"
#include "scoreflow/fingerprint.h"

namespace scoreflow {

LoadOptions::CpuModule parse_cpu_module(const std::string& name) {
  if (name == "optimized") return LoadOptions::CpuModule::kOptimized;
  if (name == "fused") return LoadOptions::CpuModule::kFused;
  fail(Field{"cpu_module"}, " must be optimized or fused, got '", name, "'");
}

bool cpu_fusion_available() { return detail::onednn_fusion_available(); }

std::string default_model_cache_dir() {
  for (const char* var : {"SCOREFLOW_CACHE_DIR", "XDG_CACHE_HOME", "HOME"}) {
    const char* value = std::getenv(var);
    if (!value || !*value) continue;
    const std::string base(value);
    if (std::string(var) == "SCOREFLOW_CACHE_DIR") return base;
    return base + (std::string(var) == "HOME" ? "/.cache/scoreflow" : "/scoreflow");
  }
  return "";
}

std::string cpu_cache_file(const std::string& dir, const std::string& content_hash,
                           const std::vector<std::string>& methods) {
  if (dir.empty() || dir == "none") return "";
  std::string key = std::string("libtorch ") + TORCH_VERSION + "; methods";
  for (const std::string& m : methods) key += " " + m;
  std::string tail = io::hash_text(key);
  tail = tail.substr(tail.find(':') + 1);
  std::string head = content_hash.substr(content_hash.find(':') + 1);
  return dir + "/" + head + "-" + tail + ".frozen.pt";
}

namespace {

bool has_methods(const torch::jit::Module& m, const std::vector<std::string>& methods) {
  for (const std::string& name : methods)
    if (!m.find_method(name)) return false;
  return true;
}

/// Writes `m` to `path` through a temporary name in the same folder, so that a reader never sees
/// half a file; any failure leaves no cache (the next load freezes again).
void save_quietly(const torch::jit::Module& m, const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  try {
    m.save(tmp);
    fs::rename(tmp, path, ec);
    if (!ec) return;
  } catch (const std::exception&) {
  }
  fs::remove(tmp, ec);
}

}  // namespace

torch::jit::Module frozen_for_cpu(const torch::jit::Module& module, const std::vector<std::string>& methods,
                                  const std::string& cache_file, bool* cache_hit) {
  *cache_hit = false;
  torch::jit::Module frozen;
  if (!cache_file.empty() && std::filesystem::exists(cache_file)) {
    try {
      frozen = torch::jit::load(cache_file, torch::kCPU);
      *cache_hit = has_methods(frozen, methods);
    } catch (const std::exception&) {
    }
  }
  if (!*cache_hit) {
    std::vector<std::string> keep(methods.begin() + 1, methods.end());  // forward is always kept
    frozen = torch::jit::freeze(module, keep);
    if (!cache_file.empty()) save_quietly(frozen, cache_file);
  }
  return frozen;
}

namespace detail {

constexpr int64_t kOneDnnProductMin = int64_t{1} << 17;

torch::Tensor bmm_onednn(const torch::Tensor& a, const torch::Tensor& b) {
  if (!at::hasMKLDNN() || a.dim() != 3 || b.dim() != 3 || !a.device().is_cpu() || !b.device().is_cpu() ||
      a.scalar_type() != torch::kFloat32 || b.scalar_type() != torch::kFloat32 || a.size(0) != b.size(0) ||
      a.size(2) != b.size(1) || a.numel() == 0 || b.numel() == 0 || a.requires_grad() || b.requires_grad())
    return at::bmm(a, b);
  const int64_t rows = a.size(0), n = a.size(1), k = a.size(2), m = b.size(2);
  // A oneDNN call costs 30-60 us, so small products stay with LibTorch (on a 2-core AMD EPYC the
  // convolution overtakes torch.bmm at about 48 x 48 x 48).
  if (n * k * m < kOneDnnProductMin) return at::bmm(a, b);
  torch::Tensor out = at::empty({rows, n, m}, a.options());
  for (int64_t r = 0; r < rows; ++r) {
    // out[r] = a[r] b[r]: b[r] is a k-channel image of m x 1 pixels, a[r] the n x k weights of a 1x1
    // convolution over it.
    const torch::Tensor x = b.select(0, r).contiguous().view({1, k, m, 1});
    const torch::Tensor w = a.select(0, r).contiguous().view({n, k, 1, 1});
    out.select(0, r).copy_(at::mkldnn_convolution(x, w, c10::nullopt, {0, 0}, {1, 1}, {1, 1}, 1).view({n, m}));
  }
  return out;
}

torch::Tensor matmul_onednn(const torch::Tensor& a, const torch::Tensor& b) {
  return a.dim() == 3 && b.dim() == 3 && a.size(0) == b.size(0) ? bmm_onednn(a, b) : at::matmul(a, b);
}

torch::Tensor baddbmm_onednn(const torch::Tensor& self, const torch::Tensor& a, const torch::Tensor& b,
                             const c10::Scalar& beta, const c10::Scalar& alpha) {
  torch::Tensor r = bmm_onednn(a, b);
  if (alpha.toDouble() != 1) r.mul_(alpha);
  if (beta.toDouble() != 0) r.add_(self, beta);  // beta = 0 ignores `self`, NaN included, as baddbmm does
  return r;
}

torch::Tensor einsum_onednn(const std::string& equation, const std::vector<torch::Tensor>& operands) {
  const auto whole = [&] { return at::einsum(equation, operands); };
  std::string eq;
  for (char c : equation)
    if (c != ' ') eq += c;
  const size_t comma = eq.find(','), arrow = eq.find("->");
  if (operands.size() != 2 || comma == std::string::npos || arrow == std::string::npos || arrow < comma) return whole();
  const std::string in_a = eq.substr(0, comma), in_b = eq.substr(comma + 1, arrow - comma - 1),
                    out = eq.substr(arrow + 2);
  if (in_a.size() != 3 || in_b.size() != 3 || out.size() != 3 || operands[0].dim() != 3 || operands[1].dim() != 3)
    return whole();
  // A batched product: one letter in all three terms (the batch), one in both inputs only (summed),
  // and one of each input's own letters kept in the output.
  char batch = 0, sum = 0, row = 0, col = 0;
  const auto in = [](const std::string& term, char c) { return term.find(c) != std::string::npos; };
  for (char c : in_a) {
    if (in(in_b, c) && in(out, c)) batch = c;
    if (in(in_b, c) && !in(out, c)) sum = c;
    if (!in(in_b, c) && in(out, c)) row = c;
  }
  for (char c : in_b)
    if (!in(in_a, c) && in(out, c)) col = c;
  const std::string bik{batch, row, col};
  if (!batch || !sum || !row || !col || out.find_first_not_of(bik) != std::string::npos ||
      std::set<char>(in_a.begin(), in_a.end()).size() != 3 || std::set<char>(in_b.begin(), in_b.end()).size() != 3 ||
      std::set<char>(out.begin(), out.end()).size() != 3)
    return whole();
  const auto order = [](const std::string& term, const std::string& letters) {
    std::vector<int64_t> dims;
    for (char c : letters) dims.push_back(static_cast<int64_t>(term.find(c)));
    return dims;
  };
  const torch::Tensor a = operands[0].permute(order(in_a, {batch, row, sum}));
  const torch::Tensor b = operands[1].permute(order(in_b, {batch, sum, col}));
  if (a.size(0) != b.size(0) || a.size(2) != b.size(1)) return whole();  // broadcasting, or einsum's own error
  return bmm_onednn(a, b).permute(order(bik, out));
}

std::vector<torch::jit::Node*> nodes_of_kind(torch::jit::Graph& graph, const char* kind) {
  const c10::Symbol symbol = c10::Symbol::fromQualString(kind);
  std::vector<torch::jit::Node*> found;
  std::vector<torch::jit::Block*> blocks{graph.block()};
  while (!blocks.empty()) {
    torch::jit::Block* block = blocks.back();
    blocks.pop_back();
    for (torch::jit::Node* node : block->nodes()) {
      for (torch::jit::Block* inner : node->blocks()) blocks.push_back(inner);
      if (node->kind() == symbol) found.push_back(node);
    }
  }
  return found;
}

bool routes_bmm_through_onednn() { return at::hasMKLDNN() && !at::hasMKL(); }

}  // namespace detail

TORCH_LIBRARY(scoreflow, m) {
  m.def("bmm_onednn(Tensor a, Tensor b) -> Tensor", &detail::bmm_onednn);
  m.def("matmul_onednn(Tensor a, Tensor b) -> Tensor", &detail::matmul_onednn);
  m.def("baddbmm_onednn(Tensor self, Tensor a, Tensor b, Scalar beta, Scalar alpha) -> Tensor",
        &detail::baddbmm_onednn);
  m.def("einsum_onednn(str equation, Tensor[] tensors) -> Tensor", &detail::einsum_onednn);
}

torch::jit::Module optimize_for_cpu(torch::jit::Module frozen, const std::vector<std::string>& methods,
                                    detail::OneDnnConvolutions onednn_convolutions) {
  // 3x3 and 1x1 convolutions first: optimize_for_inference would turn them into prepacked oneDNN
  // direct ones in the blocked layout.
  // Then each group normalisation that only feeds SiLU becomes one fused operator, with the addition
  // before it where it has one, and each sum only scaled by a constant becomes one operator.
  for (const std::string& name : methods) {
    std::shared_ptr<torch::jit::Graph> graph = frozen.get_method(name).graph();
    detail::route_convolutions_through_onednn(graph, onednn_convolutions);
    detail::fuse_additions(graph);
    detail::fuse_group_norm_silu(graph);
  }
  // A frozen module has no `training` attribute, so optimize_for_inference does not freeze it again
  // (which would drop the kept methods).
  frozen = torch::jit::optimize_for_inference(frozen, std::vector<std::string>(methods.begin() + 1, methods.end()));
  if (detail::routes_bmm_through_onednn()) {
    torch::jit::SubgraphRewriter bmm;
    const auto route = [&](const std::string& args, const std::string& op, const std::string& kept) {
      bmm.RegisterRewritePattern(
          "graph(" + args + "):\n  %r = aten::" + op + "(" + args + ")\n  return (%r)\n",
          "graph(" + args + "):\n  %r = scoreflow::" + op + "_onednn(" + kept + ")\n  return (%r)\n");
    };
    route("%a, %b", "bmm", "%a, %b");
    route("%a, %b", "matmul", "%a, %b");
    route("%s, %a, %b, %beta, %alpha", "baddbmm", "%s, %a, %b, %beta, %alpha");
    route("%e, %t", "einsum", "%e, %t");
    route("%e, %t, %path", "einsum", "%e, %t");  // PyTorch 2's einsum also takes a contraction path
    for (const std::string& name : methods) {
      std::shared_ptr<torch::jit::Graph> graph = frozen.get_method(name).graph();
      bmm.runOnGraph(graph);
    }
  }
  return frozen;
}

int choose_max_batch(const CpuChoice& timing) {
  const std::vector<double>& fast = timing.module == "fused" ? timing.fused_ms : timing.optimized_ms;
  const auto faster = [&](size_t i) {
    return i < timing.plain_ms.size() && i < fast.size() && fast[i] < timing.plain_ms[i];
  };
  return !faster(0) ? 0 : !faster(1) ? 1 : faster(2) ? CpuOptimization::kEveryBatch : 8;
}

namespace {

/// The CPU's model name (Linux /proc/cpuinfo; "" elsewhere): a choice timed on one CPU says nothing
/// about another that shares the cache folder.
std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 1);
  return "";
}

}  // namespace

std::string cpu_choice_file(const std::string& frozen_cache_file, int threads, const std::string& module) {
  if (frozen_cache_file.empty()) return "";
  const std::string stem = frozen_cache_file.substr(0, frozen_cache_file.rfind(".frozen.pt"));
  std::string cpu = io::hash_text(cpu_model_name() + "; threads " + std::to_string(threads));
  cpu = cpu.substr(cpu.find(':') + 1);
  return stem + "-" + cpu + (module == "fused" ? "-fused" : "") + ".choice.json";
}

std::optional<CpuChoice> read_cpu_choice(const std::string& file) {
  if (file.empty()) return std::nullopt;
  std::ifstream in(file);
  if (!in) return std::nullopt;
  try {
    const nlohmann::json doc = nlohmann::json::parse(in);
    CpuChoice c;
    c.max_batch = doc.at("max_batch").get<int>();
    c.plain_ms = doc.at("plain_ms").get<std::vector<double>>();
    c.optimized_ms = doc.at("optimized_ms").get<std::vector<double>>();
    // Choices stored before the fused module existed chose the optimised one.
    c.fused_ms = doc.value("fused_ms", std::vector<double>{});
    c.module = doc.value("module", std::string("optimized"));
    if (c.max_batch < 0 || (c.module != "optimized" && c.module != "fused")) return std::nullopt;
    return c;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

CpuChoice store_cpu_choice(const std::string& file, const CpuChoice& choice) {
  if (file.empty()) return choice;
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(fs::path(file).parent_path(), ec);
  const std::string tmp = file + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp);
    out << nlohmann::json{{"max_batch", choice.max_batch},
                          {"plain_ms", choice.plain_ms},
                          {"optimized_ms", choice.optimized_ms},
                          {"fused_ms", choice.fused_ms},
                          {"module", choice.module},
                          {"cpu", cpu_model_name()}}
               .dump()
        << "\n";
  }
  // link() refuses to replace an existing file: the first complete choice stays.
  const bool stored = ::link(tmp.c_str(), file.c_str()) == 0;
  fs::remove(tmp, ec);
  if (stored) return choice;
  const std::optional<CpuChoice> first = read_cpu_choice(file);
  return first ? *first : choice;
}

}  // namespace scoreflow
