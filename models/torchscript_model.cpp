// TorchScript networks + scoreflow.json metadata, wrapped as σ-space denoisers.
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <torch/script.h>
#include <torch/version.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <sstream>

#include "models/aoti_model.h"
#include "models/cpu_optimize.h"
#include "models/cpu_teams.h"
#include "models/cuda_graph.h"
#include "models/group_norm_silu.h"
#include "models/network_model.h"
#include "models/onednn_fusion.h"
#include "models/sizes_text.h"
#include "models/winograd_conv.h"
#include "scoreflow/amed.h"
#include "scoreflow/builtin.h"
#include "scoreflow/cpu_fast_path.h"
#include "scoreflow/empirical.h"
#include "scoreflow/error.h"
#include "scoreflow/fingerprint.h"
#include "scoreflow/model.h"
#include "scoreflow/prediction.h"

namespace scoreflow {
namespace {

std::string first_line(const std::string& text) { return summarize_torch_error(text); }

/// CUDA autocast to `dtype` for the lifetime of the guard (no-op for float32); restores the
/// thread's previous autocast state. The weight-cast cache is off under graph capture, where
/// cached casts would be allocated in (and freed with) the graph's private pool.
class AutocastGuard {
 public:
  AutocastGuard(torch::ScalarType dtype, bool cache) : active_(dtype != torch::kFloat32) {
    if (!active_) return;
#if TORCH_VERSION_MAJOR >= 2 && TORCH_VERSION_MINOR >= 4 || TORCH_VERSION_MAJOR >= 3
    prev_enabled_ = at::autocast::is_autocast_enabled(at::kCUDA);
    prev_dtype_ = at::autocast::get_autocast_dtype(at::kCUDA);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, dtype);
#else
    prev_enabled_ = at::autocast::is_enabled();
    prev_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_enabled(true);
    at::autocast::set_autocast_gpu_dtype(dtype);
#endif
    prev_cache_ = at::autocast::is_autocast_cache_enabled();
    at::autocast::set_autocast_cache_enabled(cache);
  }
  ~AutocastGuard() {
    if (!active_) return;
#if TORCH_VERSION_MAJOR >= 2 && TORCH_VERSION_MINOR >= 4 || TORCH_VERSION_MAJOR >= 3
    at::autocast::set_autocast_enabled(at::kCUDA, prev_enabled_);
    at::autocast::set_autocast_dtype(at::kCUDA, prev_dtype_);
#else
    at::autocast::set_enabled(prev_enabled_);
    at::autocast::set_autocast_gpu_dtype(prev_dtype_);
#endif
    at::autocast::set_autocast_cache_enabled(prev_cache_);
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_, prev_enabled_ = false, prev_cache_ = true;
  torch::ScalarType prev_dtype_ = torch::kHalf;
};

class TorchScriptModel : public NetworkModel {
 public:
  TorchScriptModel(std::string path, torch::jit::Module module, ModelMetadata meta, torch::Device device)
      : NetworkModel(std::move(path), std::move(meta)), module_(std::move(module)), device_(device) {
    module_.eval();
    const auto& schema = module_.get_method("forward").function().getSchema();
    num_inputs_ = static_cast<int>(schema.arguments().size()) - 1;  // minus self
    const int n_conds = static_cast<int>(meta_.conditions.size());
    if (n_conds == 0) {
      if (num_inputs_ != 2 && num_inputs_ != 3)
        fail("model ", path_, ": forward takes ", num_inputs_, " inputs (",
             schema.arguments().size() > 1 ? schema.arguments()[1].name() : "",
             "...); expected forward(x, t) or forward(x, t, y)");
    } else if (num_inputs_ != 2 + n_conds && num_inputs_ != 3 + n_conds) {
      std::string names;
      for (const ConditionSpec& c : meta_.conditions) names += ", " + c.name;
      fail("model ", path_, ": forward takes ", num_inputs_, " inputs but the metadata declares ", n_conds,
           " conditions; expected forward(x, t", names, ") or forward(x, t, y", names, ")");
    }
    has_labels_ = num_inputs_ - n_conds == 3;
    if (meta_.num_classes > 0 && !has_labels_)
      fail("model ", path_, ": metadata says num_classes ", meta_.num_classes,
           " but forward takes no class labels (x, t)");
    if (meta_.uncond == UncondSource::Stored)
      for (const ConditionSpec& c : meta_.conditions) stored_uncond(c.name);  // refuses a missing/bad attribute now
    if (meta_.decoder && !module_.find_method(meta_.decoder->method))
      fail("model ", path_, ": metadata 'decoder.method' names method '", meta_.decoder->method,
           "', which the module does not have");
    if (!meta_.encoder.empty() && !module_.find_method(meta_.encoder))
      fail("model ", path_, ": metadata 'encoder.method' names method '", meta_.encoder,
           "', which the module does not have");
    if (!meta_.features.empty() && !module_.find_method(meta_.features))
      fail("model ", path_, ": metadata 'features' names method '", meta_.features,
           "', which the module does not have");
  }

  std::string summary() const override {
    return "TorchScript " + prediction_name(meta_.prediction) + "-prediction network, " + meta_.schedule.describe();
  }
  torch::Device device() const override { return device_; }
  void to(torch::Device device) override {
    module_.to(device);
    device_ = device;
    if (device.is_cuda() && cpu_.active) {
      fast_.reset();
      cpu_.active = false;
      cpu_.note = "the model moved to " + device.str();
    }
  }
  const CpuOptimization& cpu_optimization() const { return cpu_; }
  void set_cpu_teams(int option) { cpu_.cpu_teams = option; }
  /// The most teams a call is split over at the current thread count (1: not split): the fused
  /// module, whose graphs are compiled during its first calls, always runs whole.
  int team_limit(int64_t batch = std::numeric_limits<int64_t>::max()) const {
    if (cpu_.active && fast_ && fast_->kind == "fused") return 1;
    return detail::cpu_team_count(batch, at::get_num_threads(), cpu_.cpu_teams);
  }

  /// LoadOptions::optimize: builds the accelerated module (models/cpu_optimize.h) and keeps it when
  /// one probe batch through every kept method agrees with the plain module; otherwise one note on
  /// stderr.
  void enable_cpu_fast_path(const LoadOptions& load) {
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::string> methods{"forward"};
    if (!meta_.features.empty()) methods.push_back(meta_.features);
    cpu_.max_batch = std::max(0, load.optimize_max_batch);
    cpu_.cache_file = cpu_cache_file(load.cache_dir.empty() ? default_model_cache_dir() : load.cache_dir,
                                     model_fingerprint(*this), methods);
    const bool timed = load.optimize_max_batch == LoadOptions::kTimedChoice;
    const std::string kind = load.cpu_module == LoadOptions::CpuModule::kFused ? "fused" : "optimized";
    std::optional<CpuChoice> stored;
    if (timed) {
      cpu_.choice_file = cpu_choice_file(cpu_.cache_file, at::get_num_threads(), kind);
      stored = read_cpu_choice(cpu_.choice_file);
      if (stored && stored->module != kind) stored.reset();
      if (stored && stored->max_batch == 0) {  // the plain module, decided earlier: nothing to build
        use_choice(*stored, "cached");
        cpu_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        return;
      }
    }
    const std::string failed = build_fast_module(kind, methods, load.probe_tolerance);
    if (failed == "plain") {
      // The plain module itself fails or is not finite on the probe: its own calls will say so.
      fast_.reset();
      cpu_.note = "the plain module fails on the probe batch; using it as it is";
      return;
    }
    if (fast_ && timed) {
      stored ? use_choice(*stored, "cached") : choose_by_timing(methods);
    } else if (fast_) {
      cpu_.module = fast_->kind;
      cpu_.probe_rel_diff = fast_->probe_rel_diff;
    } else {
      cpu_.note = failed;
    }
    if (!cpu_.note.empty()) fast_.reset();  // slower here, or not built
    cpu_.active = fast_.has_value();
    if (!cpu_.active && cpu_.choice.empty())
      std::fprintf(stderr, "note: model '%s': %s\n", path_.c_str(), cpu_.note.c_str());
    // else: slower here, a choice and not a failure, so no note on stderr
    cpu_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  /// The accelerated CPU module and its probe difference from the plain module.
  struct FastModule {
    std::string kind;  ///< "optimized" or "fused"
    torch::jit::Module module;
    double probe_rel_diff = -1;
  };

  /// Builds the `kind` module and keeps it in fast_ when its probe agrees with the plain
  /// module; returns "" then, "plain" when the plain module fails on the probe, else the note. An
  /// optimised module that fails with its routed convolutions (oneDNN's Winograd ones, the 1x1 ones
  /// through oneDNN or LibTorch's products) is built again with fewer of them: without the 1x1 ones,
  /// then without the Winograd ones, then without both, skipping the tries that route what an earlier
  /// one did (a kind this build does not route; on the 16-core host, Debian's oneDNN 2.6 failed inside
  /// PyTorch 2.11's LibTorch on a 1x1 convolution: docs/performance.md, "CPU", sessions 21-22);
  /// cpu_.onednn_convolutions_off then says why, and cpu_.onednn_convolutions_dropped which.
  std::string build_fast_module(const std::string& kind, const std::vector<std::string>& methods, double tolerance) {
    // What this build routes, read before the tries.
    const auto [winograd, pointwise] = detail::routable_convolutions();
    const char* products = detail::pointwise_products();
    std::string problem = try_fast_module(kind, methods, tolerance, {});  // every kind this build routes
    if (!problem.empty() && problem != "plain" && kind == "optimized" && (winograd || pointwise)) {
      const std::string with_all = problem;
      std::vector<std::pair<bool, bool>> tried{{winograd, pointwise}};
      for (const auto& [keep_winograd, keep_pointwise] : {std::pair{true, false}, {false, true}, {false, false}}) {
        const std::pair<bool, bool> routed{keep_winograd && winograd, keep_pointwise && pointwise};
        if (std::find(tried.begin(), tried.end(), routed) != tried.end()) continue;
        tried.push_back(routed);
        problem = try_fast_module(kind, methods, tolerance, {routed.first, routed.second});
        if (problem.empty()) {
          const bool no_winograd = winograd && !routed.first, no_pointwise = pointwise && !routed.second;
          cpu_.onednn_convolutions_off = with_all;
          cpu_.onednn_convolutions_dropped = no_winograd && no_pointwise ? "Winograd and 1x1"
                                             : no_winograd               ? "Winograd"
                                                                         : "1x1";
          if (no_pointwise) cpu_.dropped_pointwise_products = products;
          break;
        }
      }
    }
    if (problem.empty() || problem == "plain") return problem;
    return std::string(kind == "fused" ? "the fused" : "the optimised") + " CPU module " + problem +
           "; using the plain module";
  }

  /// One try of build_fast_module: "", "plain", or what went wrong.
  std::string try_fast_module(const std::string& kind, const std::vector<std::string>& methods, double tolerance,
                              detail::OneDnnConvolutions onednn_convolutions) {
    try {
      if (kind == "fused" && !cpu_fusion_available())
        return "could not be built: this LibTorch has no oneDNN Graph fusion";
      bool hit = false;
      FastModule c{kind, frozen_for_cpu(module_, methods, cpu_.cache_file, &hit)};
      cpu_.cache_hit = cpu_.cache_hit || hit;
      if (kind == "optimized") c.module = optimize_for_cpu(c.module, methods, onednn_convolutions);
      c.probe_rel_diff = probe_difference(c, methods);
      if (c.probe_rel_diff < 0) return "plain";
      if (c.probe_rel_diff <= tolerance) {
        torch::jit::Graph& graph = *c.module.get_method("forward").graph();
        cpu_.winograd_convolutions = detail::count_winograd_convolutions(graph);
        cpu_.pointwise_convolutions = detail::count_pointwise_convolutions(graph);
        cpu_.pointwise_products = cpu_.pointwise_convolutions == 0 ? "" : detail::pointwise_products();
        cpu_.fused_group_norms = detail::count_group_norm_silu(graph);
        cpu_.fused_additions = detail::count_fused_additions(graph);
        fast_ = std::move(c);
        return "";
      }
      cpu_.probe_rel_diff = c.probe_rel_diff;
      char buf[200];
      std::snprintf(buf, sizeof buf,
                    "differs from the plain module by %.3g (relative L2) on a probe batch, more than %g",
                    c.probe_rel_diff, tolerance);
      return buf;
    } catch (const std::exception& e) {
      return "could not be built: " + first_line(e.what());
    }
  }

  torch::Tensor stored_uncond(const std::string& name) const override {
    const ConditionSpec* spec = nullptr;
    for (const ConditionSpec& c : meta_.conditions)
      if (c.name == name) spec = &c;
    if (!spec || meta_.uncond != UncondSource::Stored) return Model::stored_uncond(name);
    const std::string attr = "uncond_" + name;
    if (!module_.hasattr(attr) || !module_.attr(attr).isTensor())
      fail("model ", path_, ": metadata 'uncond' is 'stored' but the module has no tensor attribute '", attr, "'");
    torch::Tensor t = module_.attr(attr).toTensor().detach();
    std::vector<int64_t> with_batch{1};
    with_batch.insert(with_batch.end(), spec->shape.begin(), spec->shape.end());
    if (t.sizes() != c10::IntArrayRef(spec->shape) && t.sizes() != c10::IntArrayRef(with_batch))
      fail("model ", path_, ": attribute '", attr, "' has shape ", sizes_text(t.sizes()), ", expected ",
           sizes_text(spec->shape), " or ", sizes_text(with_batch));
    if (spec->dtype == torch::kFloat32 ? !t.is_floating_point() : t.is_floating_point())
      fail("model ", path_, ": attribute '", attr, "' has dtype ", c10::toString(t.scalar_type()), ", expected ",
           c10::toString(spec->dtype));
    if (t.is_floating_point() && !torch::isfinite(t).all().item<bool>())
      fail("model ", path_, ": attribute '", attr, "' has NaN or Inf values");
    return t.reshape(with_batch).to(torch::kCPU, spec->dtype);
  }

  torch::Tensor call_method(const std::string& method, const torch::Tensor& input) const override {
    if (!module_.find_method(method)) return Model::call_method(method, input);
    torch::NoGradGuard no_grad;
    std::vector<torch::jit::IValue> in{input.to(device_)};
    torch::jit::IValue r;
    try {
      r = const_cast<torch::jit::Module&>(module_).get_method(method)(in);
    } catch (const c10::Error& e) {
      fail("model ", path_, ": ", method, "() failed: ", first_line(e.what_without_backtrace()));
    } catch (const std::exception& e) {
      fail("model ", path_, ": ", method, "() failed: ", first_line(e.what()));
    }
    if (!r.isTensor()) fail("model ", path_, ": ", method, "() returned ", r.tagKind(), ", expected a Tensor");
    return r.toTensor();
  }

  void configure(const InferenceOptions& options) override {
    if (options.dtype != torch::kFloat32 && !device_.is_cuda())
      fail(Field{"dtype"}, " ", inference_dtype_name(options.dtype), " needs ", Field{"device"},
           " cuda: reduced precision runs the network under CUDA autocast, "
           "which the CPU does not have here; use fp32 on the CPU");
    inference_ = options;
    graph_.reset();
    graph_failed_.clear();
    if (options.cuda_graph && device_.is_cuda() && GraphRunner::available()) graph_ = std::make_unique<GraphRunner>();
  }
  std::string inference_note() const override {
    if (!inference_.cuda_graph) return "";
    if (!graph_failed_.empty()) return graph_failed_;
    if (!device_.is_cuda()) return "CUDA graphs need a CUDA device; running the network eagerly";
    if (!GraphRunner::available()) return "this scoreflow build has no CUDA support; running the network eagerly";
    return "";
  }
  void network_only(const torch::Tensor& x, double sigma, int iterations, bool graph) const override {
    torch::NoGradGuard no_grad;
    auto [xt, t] = inputs(x, {sigma});
    std::vector<torch::jit::IValue> in{xt, t};
    if (has_labels_) in.push_back(torch::zeros({x.size(0)}, x.options().dtype(torch::kLong)));
    const std::vector<torch::Tensor> conds = zero_conds(x.size(0), x.device());
    in.insert(in.end(), conds.begin(), conds.end());
    if (graph && graph_) {
      std::vector<torch::Tensor> tensors;
      for (auto& v : in) tensors.push_back(v.toTensor());
      graph_forward(x, sigma, {}, conds);  // captures on first use
      if (graph_) {
        for (int i = 0; i < iterations; ++i) graph_->replay(tensors);
        return;
      }
    }
    AutocastGuard autocast(inference_.dtype, true);
    for (int i = 0; i < iterations; ++i) call("forward", in, sigma);
  }

  bool has_features() const override { return !meta_.features.empty(); }
  torch::Tensor features(const torch::Tensor& x, const std::vector<double>& sigma,
                         const torch::Tensor& labels) const override {
    if (meta_.features.empty()) return Model::features(x, sigma, labels);
    auto [xt, t] = inputs(x, sigma);
    std::vector<torch::jit::IValue> in{xt, t};
    if (has_labels_) in.push_back(labels);
    // Conditioned models: features of the zero condition (AMED's predictor sees the state only).
    for (const torch::Tensor& c : zero_conds(x.size(0), x.device())) in.push_back(c);
    torch::Tensor f = call(meta_.features, in, sigma.front()).toTensor();
    if (f.dim() == 4) f = f.mean(1);  // [B, C, h, w] → channel average [B, h, w]
    return f.reshape({x.size(0), -1}).to(torch::kFloat32);
  }

 private:
  std::pair<torch::Tensor, torch::Tensor> inputs(const torch::Tensor& x, const std::vector<double>& sigma) const {
    const int64_t b = x.size(0);
    const NoiseSchedule& sch = meta_.schedule;
    torch::AutoGradMode grad_mode(keep_grad(x));
    if (sigma.size() == 1) {
      double a = sch.alpha_of_sigma(sigma[0]);
      return {x * a,
              torch::full({b}, network_time(sch, meta_.time_input, sigma[0]), x.options().dtype(torch::kFloat32))};
    }
    std::vector<double> a(b), t(b);
    for (int64_t i = 0; i < b; ++i) {
      a[i] = sch.alpha_of_sigma(sigma[i]);
      t[i] = network_time(sch, meta_.time_input, sigma[i]);
    }
    return {x * column(a, x), torch::tensor(t, torch::kFloat64).to(x.device(), torch::kFloat32)};
  }

  /// A result that still aliases a CUDA graph's static output would be overwritten by the next
  /// replay: give the caller its own copy then.
  torch::Tensor own(const torch::Tensor& result, const torch::Tensor& out) const override {
    if (graph_ && result.is_cuda() && result.storage().is_alias_of(out.storage())) return result.clone();
    return result;
  }

  /// Runs the captured network for this batch shape at one σ: x·α is written straight into the
  /// graph's static input and the time vector filled in place, so a call costs the replay plus
  /// two small kernels. Returns an undefined tensor when graphs are off or capture failed (a
  /// network that synchronises, or data-dependent control flow), which turns graphs off with a note.
  torch::Tensor graph_forward(const torch::Tensor& x, double sigma, const torch::Tensor& labels,
                              const std::vector<torch::Tensor>& conds) const {
    if (!graph_ || torch::GradMode::is_enabled() || !x.is_cuda()) return {};
    const NoiseSchedule& sch = meta_.schedule;
    const double a = sch.alpha_of_sigma(sigma), t = network_time(sch, meta_.time_input, sigma);
    std::vector<torch::Tensor> like{x, torch::empty({x.size(0)}, x.options().dtype(torch::kFloat32))};
    torch::Tensor y;
    if (has_labels_) {
      y = labels.defined() ? labels : torch::zeros({x.size(0)}, x.options().dtype(torch::kLong));
      like.push_back(y);
    }
    // Conditioning inputs get static buffers too: one graph per shape of all inputs.
    const size_t first_cond = like.size();
    const std::vector<torch::Tensor> cvals = conds.empty() ? zero_conds(x.size(0), x.device()) : conds;
    like.insert(like.end(), cvals.begin(), cvals.end());
    try {
      return graph_->run(
          like,
          [&](std::vector<torch::Tensor>& in) {
            if (a == 1.0)
              in[0].copy_(x);
            else
              at::mul_out(in[0], x, torch::scalar_tensor(a, torch::kFloat64));
            in[1].fill_(t);
            if (y.defined()) in[2].copy_(y, /*non_blocking=*/true);
            for (size_t k = 0; k < cvals.size(); ++k) in[first_cond + k].copy_(cvals[k], /*non_blocking=*/true);
          },
          [&](const std::vector<torch::Tensor>& in) {
            std::vector<torch::jit::IValue> args(in.begin(), in.end());
            AutocastGuard autocast(inference_.dtype, false);
            torch::jit::IValue r = call("forward", args, sigma);
            if (!r.isTensor()) fail("model ", path_, ": forward returned ", r.tagKind(), ", expected a Tensor");
            return r.toTensor();
          });
    } catch (const std::exception& e) {
      graph_failed_ = std::string("CUDA graph capture failed, running the network eagerly: ") + first_line(e.what());
      std::fprintf(stderr, "warning: %s\n", graph_failed_.c_str());
      graph_.reset();
      return {};
    }
  }

  /// The eager forward call, under autocast when a reduced dtype is configured.
  torch::jit::IValue run_network(std::vector<torch::jit::IValue>& in, double sigma) const {
    AutocastGuard autocast(inference_.dtype, true);
    return call("forward", in, sigma);
  }

  /// Inference runs without autograd, except when the caller asks for gradients with respect to
  /// the input (x.requires_grad() with grad mode on: eval/ Jacobian-vector products).

  /// The accelerated module serves CPU float32 batches up to its size limit that need no gradients.
  bool use_fast(const std::vector<torch::jit::IValue>& in) const {
    if (!cpu_.active) return false;
    const torch::Tensor& x = in.front().toTensor();
    return x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && x.size(0) <= cpu_.max_batch &&
           !(torch::GradMode::is_enabled() && x.requires_grad());
  }

  /// `method` of the accelerated module `c` on `in`; a fused module runs inside a fusion scope, so that the
  /// graphs the profiling executor optimises during the call are fused.
  static torch::jit::IValue run_fast(const FastModule& c, const std::string& method,
                                     std::vector<torch::jit::IValue>& in) {
    std::optional<detail::OnednnFusionScope> scope;
    if (c.kind == "fused") scope.emplace();
    return const_cast<torch::jit::Module&>(c.module).get_method(method)(in);
  }

  /// The network's inputs for a fixed batch of `b` at σ = 1 (zero labels and conditions).
  std::vector<torch::jit::IValue> probe_inputs(int64_t b) const {
    std::vector<int64_t> shape{b};
    shape.insert(shape.end(), meta_.shape.begin(), meta_.shape.end());
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    const torch::Tensor x = torch::sin(torch::arange(n, torch::kFloat32) * 0.37).reshape(shape);
    auto [xt, t] = inputs(x, {1.0});
    std::vector<torch::jit::IValue> in{xt, t};
    if (has_labels_) in.push_back(torch::zeros({b}, torch::kLong));
    for (const torch::Tensor& c : zero_conds(b, torch::kCPU)) in.push_back(c);
    return in;
  }

  /// LoadOptions::kTimedChoice: the plain and the accelerated module timed at batch 1 (two warm-up
  /// calls, which let the profiling executor specialise and compile, then the median of three) and,
  /// while the accelerated one wins, at batch 8 and 16; the choice (choose_max_batch) is stored for
  /// later loads (the first stored choice stays).
  void choose_by_timing(const std::vector<std::string>& methods) {
    torch::NoGradGuard no_grad;
    auto ms_per_call = [&](const std::function<void(std::vector<torch::jit::IValue>&)>& run,
                           const std::vector<torch::jit::IValue>& in) {
      std::vector<double> ms;
      for (int k = 0; k < 5; ++k) {
        std::vector<torch::jit::IValue> args = in;
        const auto t0 = std::chrono::steady_clock::now();
        run(args);
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
      std::sort(ms.begin() + 2, ms.end());
      return ms[3];
    };
    CpuChoice timed;
    for (int64_t b : CpuOptimization::kTimedBatches) {
      const std::vector<torch::jit::IValue> in = probe_inputs(b);
      timed.plain_ms.push_back(ms_per_call([&](auto& args) { module_.get_method(methods.front())(args); }, in));
      const double ms = ms_per_call([&](auto& args) { run_fast(*fast_, methods.front(), args); }, in);
      (fast_->kind == "fused" ? timed.fused_ms : timed.optimized_ms).push_back(ms);
      if (!(ms < timed.plain_ms.back())) break;  // lost here: a larger batch cannot help
    }
    timed.module = fast_->kind;
    timed.max_batch = choose_max_batch(timed);
    use_choice(store_cpu_choice(cpu_.choice_file, timed), "timed");
  }

  /// Applies a timed or stored choice; one that keeps the plain module says why in the note.
  void use_choice(const CpuChoice& choice, const char* how) {
    cpu_.choice = how;
    cpu_.module = choice.module;
    cpu_.max_batch = choice.max_batch;
    cpu_.plain_ms = choice.plain_ms;
    cpu_.optimized_ms = choice.optimized_ms;
    cpu_.fused_ms = choice.fused_ms;
    if (fast_) cpu_.probe_rel_diff = fast_->probe_rel_diff;
    if (cpu_.max_batch > 0) return;
    const std::vector<double>& fast = choice.module == "fused" ? cpu_.fused_ms : cpu_.optimized_ms;
    char buf[240];
    std::snprintf(buf, sizeof buf,
                  "the %s CPU module is slower than the plain module at batch 1 here (%.3g vs %.3g ms per "
                  "call, timed at %s); using the plain module",
                  choice.module == "fused" ? "fused" : "optimised", fast.empty() ? 0.0 : fast[0],
                  cpu_.plain_ms.empty() ? 0.0 : cpu_.plain_ms[0], cpu_.choice == "cached" ? "an earlier load" : "load");
    cpu_.note = buf;
  }

  /// Largest relative L2 difference between the accelerated module `c` and the plain module over `methods`, on a
  /// fixed batch of 2 at σ = 1; -1 when the plain module throws or gives non-finite values there.
  double probe_difference(const FastModule& c, const std::vector<std::string>& methods) const {
    torch::NoGradGuard no_grad;
    std::vector<torch::jit::IValue> in = probe_inputs(2);
    double worst = 0;
    for (const std::string& m : methods) {
      torch::jit::IValue plain;
      try {
        plain = const_cast<torch::jit::Module&>(module_).get_method(m)(in);
      } catch (const std::exception&) {
        return -1;
      }
      if (!plain.isTensor() || !torch::isfinite(plain.toTensor()).all().item<bool>()) return -1;
      // A fused graph is compiled during the executor's first calls: compare what a later call gives.
      torch::jit::IValue fast;
      for (int k = 0; k < (c.kind == "fused" ? 3 : 1); ++k) fast = run_fast(c, m, in);
      if (!fast.isTensor()) return INFINITY;
      const torch::Tensor p = plain.toTensor().to(torch::kFloat64), f = fast.toTensor().to(torch::kFloat64);
      if (p.sizes() != f.sizes()) return INFINITY;
      const double rel = ((f - p).norm() / p.norm().clamp_min(1e-30)).item<double>();
      worst = std::isnan(rel) ? INFINITY : std::max(worst, rel);
    }
    return worst;
  }

  torch::jit::IValue call(const std::string& method, std::vector<torch::jit::IValue>& in, double sigma) const {
    const int teams = method == "forward" && splits_over_teams(in) ? team_limit(in.front().toTensor().size(0)) : 1;
    if (teams > 1) return call_on_teams(method, in, sigma, teams, at::get_num_threads());
    // Idle team workers slow a whole call's parallel regions (detail::release_cpu_teams).
    if (cpu_.cpu_teams != 1 && method == "forward") detail::release_cpu_teams();
    return call_whole(method, in, sigma);
  }

  /// Whether a call may be split over thread teams (LoadOptions::cpu_teams): CPU input and no
  /// gradient wanted.
  bool splits_over_teams(const std::vector<torch::jit::IValue>& in) const {
    if (cpu_.cpu_teams == 1 || !in.front().isTensor()) return false;
    const torch::Tensor& x = in.front().toTensor();
    return x.device().is_cpu() && x.dim() > 0 && !(torch::GradMode::is_enabled() && x.requires_grad());
  }

  /// `method` on `teams` contiguous parts of the batch at once (detail::run_on_cpu_teams); inputs
  /// with the batch's rows are split, others passed whole; the parts' outputs are joined in order.
  torch::jit::IValue call_on_teams(const std::string& method, const std::vector<torch::jit::IValue>& in, double sigma,
                                   int teams, int threads) const {
    const int64_t b = in.front().toTensor().size(0);
    std::vector<torch::jit::IValue> results(static_cast<size_t>(teams));
    detail::run_on_cpu_teams(teams, threads, [&](int k) {
      const int64_t begin = b * k / teams, end = b * (k + 1) / teams;
      std::vector<torch::jit::IValue> part;
      for (const torch::jit::IValue& v : in) {
        const bool rows = v.isTensor() && v.toTensor().dim() > 0 && v.toTensor().size(0) == b;
        part.push_back(rows ? torch::jit::IValue(v.toTensor().narrow(0, begin, end - begin)) : v);
      }
      results[k] = call_whole(method, part, sigma);
    });
    std::vector<torch::Tensor> outs;
    for (const torch::jit::IValue& r : results) {
      if (!r.isTensor()) return r;  // the caller refuses it by its kind
      outs.push_back(r.toTensor());
    }
    return torch::cat(outs, 0);
  }

  torch::jit::IValue call_whole(const std::string& method, std::vector<torch::jit::IValue>& in, double sigma) const {
    try {
      if (use_fast(in)) return run_fast(*fast_, method, in);
      return const_cast<torch::jit::Module&>(module_).get_method(method)(in);
    } catch (const c10::Error& e) {
      fail("model ", path_, ": ", method, "() failed at sigma=", sigma, ": ", first_line(e.what_without_backtrace()));
    } catch (const std::exception& e) {
      fail("model ", path_, ": ", method, "() failed at sigma=", sigma, ": ", first_line(e.what()));
    }
  }

  const char* output_source() const override { return "forward"; }

  torch::Tensor network_output(const torch::Tensor& x, const std::vector<double>& sigma, const torch::Tensor& labels,
                               const std::vector<torch::Tensor>& given) const override {
    torch::AutoGradMode grad_mode(keep_grad(x));
    // A conditioned model called without its inputs (the second-moment head, probes) gets zeros.
    const std::vector<torch::Tensor> conds = given.empty() ? zero_conds(x.size(0), x.device()) : given;
    torch::Tensor out = sigma.size() == 1 ? graph_forward(x, sigma[0], labels, conds) : torch::Tensor();
    if (out.defined()) return out;
    auto [xt, t] = inputs(x, sigma);
    std::vector<torch::jit::IValue> in{xt, t};
    if (has_labels_)
      in.push_back(labels.defined() ? labels : torch::zeros({x.size(0)}, x.options().dtype(torch::kLong)));
    for (const torch::Tensor& c : conds) in.push_back(c);
    torch::jit::IValue result = run_network(in, sigma.front());
    if (!result.isTensor()) fail("model ", path_, ": forward returned ", result.tagKind(), ", expected a Tensor");
    return result.toTensor();
  }

  /// Zero values of every declared condition for a batch of `b` (empty when there are none).
  std::vector<torch::Tensor> zero_conds(int64_t b, const torch::Device& device) const {
    std::vector<torch::Tensor> out;
    for (const ConditionSpec& c : meta_.conditions) {
      std::vector<int64_t> shape{b};
      shape.insert(shape.end(), c.shape.begin(), c.shape.end());
      out.push_back(torch::zeros(shape, torch::TensorOptions().dtype(c.dtype).device(device)));
    }
    return out;
  }

  torch::jit::Module module_;
  torch::Device device_;
  int num_inputs_ = 2;
  bool has_labels_ = false;
  mutable std::unique_ptr<GraphRunner> graph_;
  mutable std::string graph_failed_;
  std::optional<FastModule> fast_;  ///< the CPU fast path's module (cpu_.active), else none
  CpuOptimization cpu_;
};

}  // namespace

std::string summarize_torch_error(const std::string& text) {
  std::string best, line;
  std::istringstream in(text);
  while (std::getline(in, line))
    if (line.find("Error: ") != std::string::npos || line.find("Exception: ") != std::string::npos) best = line;
  if (best.empty()) best = text.substr(0, text.find('\n'));
  size_t start = best.find_first_not_of(" \t");
  best = start == std::string::npos ? best : best.substr(start);
  return best.size() > 300 ? best.substr(0, 300) + "..." : best;
}

CpuOptimization cpu_optimization(const Model& model) {
  const auto* ts = dynamic_cast<const TorchScriptModel*>(&model);
  return ts ? ts->cpu_optimization() : CpuOptimization{};
}

bool has_cpu_fast_path(const Model& model) {
  return dynamic_cast<const TorchScriptModel*>(&model) != nullptr && model.device().is_cpu();
}

int cpu_team_limit(const Model& model) {
  const auto* ts = dynamic_cast<const TorchScriptModel*>(&model);
  return ts && model.device().is_cpu() ? ts->team_limit() : 1;
}

std::shared_ptr<Model> open_model(const std::string& spec, const std::string& meta_file,
                                  const std::vector<std::string>& overrides, torch::Device device) {
  return open_model(spec, meta_file, overrides, device, LoadOptions{});
}

std::shared_ptr<Model> open_model(const std::string& spec, const std::string& meta_file,
                                  const std::vector<std::string>& overrides, torch::Device device,
                                  const LoadOptions& load) {
  if (load.optimize_max_batch < LoadOptions::kTimedChoice)
    fail(Field{"optimize_max_batch"}, " must be >= 0 (or -1: timed at load), got ", load.optimize_max_batch);
  if (load.cpu_teams < 0) fail(Field{"cpu_teams"}, " must be >= 0 (0: automatic, 1: off), got ", load.cpu_teams);
  if (spec.rfind("builtin:", 0) == 0) {
    if (!meta_file.empty() || !overrides.empty())
      fail("builtin models take no ", Field{"meta"}, "/", Field{"meta_file"},
           "; give their args inline, e.g. builtin:gaussian:shape=3x8x8,std=0.5");
    std::shared_ptr<Model> model;
    if (spec.rfind("builtin:empirical", 0) == 0)
      model = make_empirical(spec);
    else
      model = make_builtin(spec);
    model->to(device);
    return model;
  }
  const bool package = spec.size() > 4 && spec.compare(spec.size() - 4, 4, ".pt2") == 0;
  {
    std::ifstream probe(spec, std::ios::binary);
    if (!probe) fail("cannot read model file '", spec, "': ", std::strerror(errno));
    char magic[2] = {0, 0};
    probe.read(magic, 2);
    if (probe.gcount() < 2 || magic[0] != 'P' || magic[1] != 'K')
      fail("model file '", spec, "' is not a ", package ? "torch.export package" : "TorchScript archive",
           " (not a zip file)");
  }
  std::string file_json;
  if (!meta_file.empty()) {
    std::ifstream in(meta_file);
    if (!in) fail("cannot read ", Field{"meta_file"}, " '", meta_file, "': ", std::strerror(errno));
    std::stringstream ss;
    ss << in.rdbuf();
    file_json = ss.str();
  }
  if (package) return open_aoti_model(spec, file_json, overrides, device);
  torch::jit::ExtraFilesMap extra{{"scoreflow.json", ""}};
  torch::jit::Module module;
  try {
    module = torch::jit::load(spec, device, extra);
  } catch (const c10::Error& e) {
    fail("model file '", spec, "' could not be loaded as TorchScript: ", first_line(e.what_without_backtrace()));
  } catch (const std::exception& e) {
    fail("model file '", spec, "' could not be loaded as TorchScript: ", first_line(e.what()));
  }
  if (!module.find_method("forward")) fail("model file '", spec, "' has no forward method");
  ModelMetadata meta;
  try {
    meta = resolve_metadata(extra["scoreflow.json"], file_json, overrides, "'" + spec + "'");
  } catch (const Error& e) {
    // Field errors ("metadata field 'shape' ...") do not know the file; say which model it was.
    if (std::string(e.what()).find(spec) != std::string::npos) throw;
    throw e.prefixed("model '" + spec + "': ");
  }
  auto model = std::make_shared<TorchScriptModel>(spec, std::move(module), std::move(meta), device);
  if (device.is_cpu()) model->set_cpu_teams(load.cpu_teams);
  if (load.optimize && device.is_cpu()) model->enable_cpu_fast_path(load);
  return model;
}

}  // namespace scoreflow
