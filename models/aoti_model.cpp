// `.pt2` packages. The loader below is compiled only against LibTorch >= 2.6 (the Debian LibTorch
// 1.13 of CI builds the refusal alone), so this file keeps to the few calls of the package loader
// that are stable since 2.6: the constructor (path, model name), get_metadata() and run(inputs), plus
// the constructor's single-threaded flag from 2.7 on (CUDA-graph capture needs it).
#include "models/aoti_model.h"

#include <torch/version.h>

#include <fstream>
#include <sstream>

#include "scoreflow/error.h"

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 6)
#define SCOREFLOW_HAS_AOTI 1
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include "models/cuda_graph.h"
#include "models/network_model.h"
#include "scoreflow/prediction.h"
#endif

namespace scoreflow {

#if !SCOREFLOW_HAS_AOTI

bool aoti_available() { return false; }

std::shared_ptr<Model> open_aoti_model(const std::string& path, const std::string&, const std::vector<std::string>&,
                                       torch::Device) {
  fail("model file '", path,
       "' is a torch.export/AOTInductor package (.pt2), which needs scoreflow built against LibTorch >= 2.6 "
       "(e.g. PyTorch's own, scripts/build-cuda.sh); this build has LibTorch ",
       TORCH_VERSION, " (use the TorchScript file the package was made from)");
}

#else

bool aoti_available() { return true; }

namespace {

/// A compiled package: one graph `forward(x_t, t[, y], cond_1, ..., cond_n)` for the device it was
/// compiled for, with a dynamic batch dimension on every input; the conditions follow the metadata's
/// `conditions` in order, as for TorchScript archives (docs/design.md §3). Features methods,
/// decoder/encoder methods, stored unconditional values and autocast do not exist in a package.
class AotiModel : public NetworkModel {
 public:
  AotiModel(std::string path, std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader, ModelMetadata meta,
            torch::Device device)
      : NetworkModel(std::move(path), std::move(meta)), loader_(std::move(loader)), device_(device) {}

  std::string summary() const override {
    return "AOTInductor package, " + prediction_name(meta_.prediction) + "-prediction network, " +
           meta_.schedule.describe();
  }
  torch::Device device() const override { return device_; }
  void to(torch::Device device) override {
    if (device.type() != device_.type())
      fail("model ", path_, ": an AOTInductor package runs on the device type it was compiled for (", device_.str(),
           "), not ", device.str(), "; export it again for that device");
    device_ = device;
  }
  void configure(const InferenceOptions& options) override {
    if (options.dtype != torch::kFloat32)
      fail("model ", path_, ": an AOTInductor package runs in the precision it was compiled in; dtype ",
           inference_dtype_name(options.dtype), " is not available (scripts/export_pt2.py compiles float32 packages)");
    inference_ = options;
    graph_.reset();
    graph_failed_.clear();
    if (options.cuda_graph && device_.is_cuda() && GraphRunner::available()) graph_ = std::make_unique<GraphRunner>();
  }
  std::string inference_note() const override {
    if (!inference_.cuda_graph) return "";
    if (!graph_failed_.empty()) return graph_failed_;
    if (!device_.is_cuda()) return "CUDA graphs need a CUDA device; running the package directly";
    return GraphRunner::available() ? "" : "this scoreflow build has no CUDA support; running the package directly";
  }

  void network_only(const torch::Tensor& x, double sigma, int iterations, bool graph) const override {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> in = inputs(x, {sigma}, {}, {});
    if (graph && graph_ && graph_run(x, sigma, {}, {}).defined()) {
      for (int i = 0; i < iterations; ++i) graph_->replay(in);
      return;
    }
    for (int i = 0; i < iterations; ++i) run(in, sigma);
  }

 private:
  /// The package's inputs: x_t, t, labels when the model has classes, then one tensor per declared
  /// condition ([B, ...shape] in its dtype; zeros where the caller gives none, as TorchScript
  /// archives get them).
  std::vector<torch::Tensor> inputs(const torch::Tensor& x, const std::vector<double>& sigma,
                                    const torch::Tensor& labels, const std::vector<torch::Tensor>& conds) const {
    const int64_t b = x.size(0);
    std::vector<double> a(sigma.size()), t(sigma.size());
    for (size_t i = 0; i < sigma.size(); ++i) {
      a[i] = meta_.schedule.alpha_of_sigma(sigma[i]);
      t[i] = network_time(meta_.schedule, meta_.time_input, sigma[i]);
    }
    std::vector<torch::Tensor> in{
        (x * column(a, x)).contiguous(),
        torch::tensor(t, torch::kFloat64).to(x.device(), torch::kFloat32).expand({b}).contiguous()};
    if (meta_.num_classes > 0)
      in.push_back(labels.defined() ? labels.to(x.device(), torch::kLong)
                                    : torch::zeros({b}, x.options().dtype(torch::kLong)));
    for (size_t k = 0; k < meta_.conditions.size(); ++k) {
      const ConditionSpec& c = meta_.conditions[k];
      std::vector<int64_t> size{b};
      size.insert(size.end(), c.shape.begin(), c.shape.end());
      if (conds.empty()) {
        in.push_back(torch::zeros(size, x.options().dtype(c.dtype)));
        continue;
      }
      torch::Tensor v = conds[k].to(x.device(), c.dtype);
      in.push_back((v.size(0) == 1 && b != 1 ? v.expand(size) : v).contiguous());
    }
    return in;
  }

  torch::Tensor run(const std::vector<torch::Tensor>& in, double sigma) const {
    try {
      std::vector<torch::Tensor> out = loader_->run(in);
      if (out.size() != 1) fail("model ", path_, ": the package returned ", out.size(), " outputs, expected 1");
      return out.front();
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      fail("model ", path_, ": the package failed at sigma=", sigma, ": ", summarize_torch_error(e.what()));
    }
  }

  /// The package replayed from a CUDA graph for this batch shape (one σ); undefined when graphs are
  /// off or capture failed, which turns them off with a warning.
  torch::Tensor graph_run(const torch::Tensor& x, double sigma, const torch::Tensor& labels,
                          const std::vector<torch::Tensor>& conds) const {
    if (!graph_ || !x.is_cuda() || torch::GradMode::is_enabled()) return {};
    std::vector<torch::Tensor> like = inputs(x, {sigma}, labels, conds);
    try {
      return graph_->run(
          like,
          [&](std::vector<torch::Tensor>& in) {
            for (size_t i = 0; i < in.size(); ++i) in[i].copy_(like[i]);
          },
          [&](const std::vector<torch::Tensor>& in) { return run(in, sigma); });
    } catch (const std::exception& e) {
      graph_failed_ = std::string("CUDA graph capture of the package failed, running it directly: ") +
                      summarize_torch_error(e.what());
      std::fprintf(stderr, "warning: %s\n", graph_failed_.c_str());
      graph_.reset();
      return {};
    }
  }

  bool has_autograd() const override { return false; }
  const char* output_source() const override { return "the package"; }

  torch::Tensor network_output(const torch::Tensor& x, const std::vector<double>& sigma, const torch::Tensor& labels,
                               const std::vector<torch::Tensor>& conds) const override {
    torch::NoGradGuard no_grad;  // a compiled package has no autograd
    torch::Tensor out = sigma.size() == 1 ? graph_run(x, sigma[0], labels, conds) : torch::Tensor();
    if (out.defined()) return out.clone();  // the graph's static output is overwritten by the next replay
    return run(inputs(x, sigma, labels, conds), sigma.front());
  }

  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader_;
  torch::Device device_;
  mutable std::unique_ptr<GraphRunner> graph_;
  mutable std::string graph_failed_;
};

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) return "";
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::shared_ptr<Model> open_aoti_model(const std::string& path, const std::string& file_json,
                                       const std::vector<std::string>& overrides, torch::Device device) {
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader;
  try {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 7)
    // Single-threaded mode (LibTorch >= 2.7): the default mode's pool of model instances checks
    // CUDA events between runs, which a stream under CUDA-graph capture forbids ("operation not
    // permitted when stream is capturing", measured on PyTorch 2.11); scoreflow calls a model from
    // one thread, so nothing is lost.
    loader = std::make_unique<torch::inductor::AOTIModelPackageLoader>(path, "model", /*run_single_threaded=*/true);
#else
    loader = std::make_unique<torch::inductor::AOTIModelPackageLoader>(path, "model");
#endif
  } catch (const std::exception& e) {
    fail("model file '", path, "' could not be loaded as an AOTInductor package: ", summarize_torch_error(e.what()));
  }
  const std::unordered_map<std::string, std::string> info = loader->get_metadata();
  auto it = info.find("scoreflow.json");
  const std::string archive_json = it != info.end() ? it->second : read_text(path + ".json");
  // The package is compiled for one device type: "cpu" or "cuda" (the loader's AOTI_DEVICE_KEY).
  auto dev = info.find("AOTI_DEVICE_KEY");
  if (dev != info.end() && (dev->second == "cuda") != device.is_cuda())
    fail("model file '", path, "' was compiled for ", dev->second, ", not ", device.str(),
         "; export it again for that device (scripts/export_pt2.py --device)");
  ModelMetadata meta = resolve_metadata(archive_json, file_json, overrides, "'" + path + "'");
  if (!meta.features.empty())
    fail("model '", path, "': metadata field 'features' names method '", meta.features,
         "', which an AOTInductor package cannot carry (it holds forward alone)");
  if (meta.decoder || !meta.encoder.empty())
    fail("model '", path,
         "': metadata fields 'decoder'/'encoder' name TorchScript methods, which an AOTInductor package cannot carry ",
         "(it holds forward alone); export without them and decode with the TorchScript archive (decoder file)");
  if (meta.uncond == UncondSource::Stored)
    fail("model '", path,
         "': metadata 'uncond' is 'stored' (tensor attributes of a TorchScript archive), which an AOTInductor ",
         "package cannot carry; export without it and give the unconditional values as uncond arrays ",
         "(scripts/export_pt2.py writes them to OUT.uncond.npz)");
  return std::make_shared<AotiModel>(path, std::move(loader), std::move(meta), device);
}

#endif

}  // namespace scoreflow
