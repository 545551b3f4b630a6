#pragma once
/// Models: anything that gives the σ-space denoiser D(x, σ) ≈ E[x0 | x0 + σε] (docs/design.md §2) —
/// a TorchScript network wrapped with its metadata, or a built-in analytic model.
#include <torch/types.h>

#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "scoreflow/schedule.h"

namespace scoreflow {

enum class Prediction { Eps, X0, V, Score, Flow };
enum class Head { None, Eps2, EpsC };
Prediction parse_prediction(const std::string& name);
std::string prediction_name(Prediction p);
Head parse_head(const std::string& name);
std::string head_name(Head h);

/// One extra forward input declared by the metadata's "conditions" (docs/design.md §3): the network
/// is called as forward(x, t[, y], cond_1, ..., cond_n) in declaration order.
struct ConditionSpec {
  std::string name;
  std::vector<int64_t> shape;                 ///< one sample's value, without the batch dimension
  torch::ScalarType dtype = torch::kFloat32;  ///< float32 (default), int64 or int32
};

/// Where the unconditional value of every condition comes from when guidance needs one and the
/// caller gives none: nowhere, all zeros, or the archive's tensor attributes `uncond_<name>`.
enum class UncondSource { None, Zeros, Stored };

/// A latent model's decoder (metadata "decoder"): image = method(latents / scale + shift), where
/// the network samples `latents` (diffusers: latents = z · scaling_factor; SD3/Flux: latents =
/// (z − shift_factor) · scaling_factor). Images are [C, H, W] in [image_min, image_max].
struct DecoderSpec {
  std::string method;  ///< a TorchScript method taking and returning one tensor
  double scale = 1, shift = 0;
  std::vector<int64_t> image_shape;
  double image_min = -1, image_max = 1;
};

/// The `scoreflow.json` fields (docs/design.md §3), resolved.
struct ModelMetadata {
  Prediction prediction = Prediction::X0;
  NoiseSchedule schedule = NoiseSchedule::edm();
  TimeInput time_input = TimeInput::Sigma;
  std::vector<int64_t> shape;  ///< one sample, e.g. [C, H, W] or [2]
  double data_min = -1, data_max = 1;
  int num_classes = 0;
  Head head = Head::None;
  std::string features;                   ///< TorchScript method returning AMED bottleneck features, or ""
  std::string json;                       ///< the resolved metadata as a JSON document
  std::vector<ConditionSpec> conditions;  ///< extra forward inputs after (x, t[, y]), in order
  UncondSource uncond = UncondSource::None;
  std::optional<DecoderSpec> decoder;  ///< latent models: how samples become images
  std::string encoder;                 ///< TorchScript method encoding images to latents, or ""
  /// True for [C, H, W] with C in {1, 3, 4}: such samples can be written as images.
  bool image_shaped() const;
};

/// Merges the archive's scoreflow.json (may be empty), a --meta-file JSON document (may be empty)
/// and `key=value` overrides (value parsed as JSON, bare words as strings), in that order, and
/// validates every field. Throws Error naming the field and the bad value, or — when required
/// fields are missing — listing all of them. `source` names the model in messages.
ModelMetadata resolve_metadata(const std::string& archive_json, const std::string& file_json,
                               const std::vector<std::string>& overrides, const std::string& source);
/// Parses a "decoder" object (JSON text) as resolve_metadata does; `field` prefixes field names in
/// messages (e.g. "decoder"). For separate decoder archives (their own scoreflow.json).
DecoderSpec decoder_from_json(const std::string& json_text, const std::string& field);
/// Builds a NoiseSchedule from its JSON text (the "schedule" field).
NoiseSchedule schedule_from_json(const std::string& json_text);

/// How a network is run (TorchScript networks on CUDA; other models accept only the defaults).
struct InferenceOptions {
  /// Float = full precision; Half/BFloat16 run the network under CUDA autocast. Inputs, outputs,
  /// the sampler state and the schedule arithmetic stay float32/double either way.
  torch::ScalarType dtype = torch::kFloat32;
  /// Replay the fixed-shape network call from a CUDA graph (captured on first use per batch shape).
  bool cuda_graph = false;
};

/// "fp32" | "fp16" | "bf16" → dtype; throws naming the valid choices.
torch::ScalarType parse_inference_dtype(const std::string& name);
std::string inference_dtype_name(torch::ScalarType dtype);

/// A model in σ-space. Implementations must be safe to call from one thread at a time.
class Model {
 public:
  virtual ~Model() = default;
  /// The path or builtin spec it was made from.
  virtual std::string name() const = 0;
  /// One line for `info` and --json summaries.
  virtual std::string summary() const = 0;
  virtual const ModelMetadata& metadata() const = 0;
  /// D(x, σ). x: [B, ...shape] in σ-space (x = x_t/α); sigma: one value for the whole batch or
  /// one per sample; labels: [B] int64 class labels or an undefined tensor. Returns [B, ...shape]
  /// in x's dtype on x's device.
  virtual torch::Tensor denoise(const torch::Tensor& x, const std::vector<double>& sigma,
                                const torch::Tensor& labels) const = 0;
  /// D(x, σ) with the metadata's conditioning inputs: conds[k] is [B, ...conditions[k].shape] in
  /// its declared dtype on x's device. The default serves models without conditions (conds empty).
  virtual torch::Tensor denoise_conditioned(const torch::Tensor& x, const std::vector<double>& sigma,
                                            const torch::Tensor& labels, const std::vector<torch::Tensor>& conds) const;
  /// The archive's stored unconditional value of condition `name` (attribute uncond_<name>), shaped
  /// [1, ...declared shape]; throws Error when the model has none.
  virtual torch::Tensor stored_uncond(const std::string& name) const;
  /// Calls the one-tensor TorchScript method `method` of the model's archive (a latent decoder or
  /// encoder) on `input`; throws Error when the model has no such method.
  virtual torch::Tensor call_method(const std::string& method, const torch::Tensor& input) const;
  /// SN/NPR-DPM second head at the same point: E[ε²|x] (eps2) or E[(ε−ε̂)²|x] (epsc), [B, ...shape].
  /// Throws Error when the model has no such head.
  virtual std::pair<torch::Tensor, torch::Tensor> denoise_with_head(const torch::Tensor& x,
                                                                    const std::vector<double>& sigma,
                                                                    const torch::Tensor& labels) const;
  /// AMED bottleneck features [B, F] (channel-averaged), or throws when the model has none.
  virtual bool has_features() const { return false; }
  virtual torch::Tensor features(const torch::Tensor& x, const std::vector<double>& sigma,
                                 const torch::Tensor& labels) const;
  virtual torch::Device device() const { return torch::kCPU; }
  virtual void to(torch::Device device) {}
  /// Sets how the network runs. Throws Error when the model or device cannot honour `dtype`
  /// (reduced precision needs a TorchScript network on CUDA). A CUDA graph that cannot be used
  /// (CPU, a CPU-only build, a builtin model) is not an error: the call runs eagerly and
  /// inference_note() says why.
  virtual void configure(const InferenceOptions& options);
  const InferenceOptions& inference() const { return inference_; }
  /// Why a requested CUDA graph is not used (empty when it is, or was not asked for).
  virtual std::string inference_note() const;
  /// Benchmarks: the bare network call on `x` at σ (the network input, after any scaling), run
  /// `iterations` times as the denoiser would run it (eager, or replayed from the CUDA graph when
  /// one is configured and `graph` is true). Returns nothing; time it around a device sync.
  virtual void network_only(const torch::Tensor& x, double sigma, int iterations, bool graph) const;

 protected:
  InferenceOptions inference_;
};

/// Opens a model: "builtin:NAME[:k=v,...]" or a TorchScript path. `meta_file` and `overrides` as
/// in resolve_metadata (builtins reject overrides except their own args).
std::shared_ptr<Model> open_model(const std::string& spec, const std::string& meta_file = "",
                                  const std::vector<std::string>& overrides = {}, torch::Device device = torch::kCPU);

/// The line of a (multi-line, traceback-carrying) TorchScript error that says what went wrong: the
/// last "...Error: message" line, else the first line; trimmed to 300 characters.
std::string summarize_torch_error(const std::string& text);

/// Names and one-line summaries of the built-in models.
std::vector<std::pair<std::string, std::string>> builtin_models();

/// Classifier-free guidance, labels and conditioning inputs for one batch.
struct Conditioning {
  torch::Tensor labels;   ///< [B] int64, or undefined for unconditional models
  double guidance = 1.0;  ///< w: D = D_u + w (D_c − D_u); 1 = conditional only
  /// One tensor per declared condition (metadata order), [B or 1, ...shape]; 1 row is shared.
  std::vector<torch::Tensor> conds;
  /// Unconditional values for guidance, same layout; empty = the metadata's "uncond" source.
  std::vector<torch::Tensor> unconds;
  /// Guidance applies only where σ ∈ [guidance_lo, guidance_hi]; elsewhere D = D_c.
  double guidance_lo = 0, guidance_hi = std::numeric_limits<double>::infinity();
  /// φ of Lin et al. 2024 (diffusers' guidance_rescale), 0 = off: the guided noise prediction
  /// ε_g = (x − D_g)/σ is rescaled to the per-sample std of the conditional ε_c and blended,
  /// ε = φ ε_g std(ε_c)/std(ε_g) + (1 − φ) ε_g (docs/design.md §3).
  double rescale = 0;
};

/// What samplers see: D(x, σ) with guidance applied, counting network evaluations (NFE) and
/// refusing non-finite network output (naming σ).
class Denoiser {
 public:
  Denoiser(std::shared_ptr<const Model> model, Conditioning cond = {});
  /// D(x, σ) at one σ for the whole batch. [B, ...shape].
  torch::Tensor operator()(const torch::Tensor& x, double sigma) const;
  /// D(x, σ_b) with one σ per sample.
  torch::Tensor operator()(const torch::Tensor& x, const std::vector<double>& sigma) const;
  /// D and the SN/NPR-DPM second head at one σ (counts as one evaluation; no guidance).
  std::pair<torch::Tensor, torch::Tensor> with_head(const torch::Tensor& x, double sigma) const;
  /// Number of denoiser evaluations so far (one per call, guidance or not).
  int64_t nfe() const { return nfe_; }
  const Model& model() const { return *model_; }
  const NoiseSchedule& schedule() const { return model_->metadata().schedule; }
  const Conditioning& conditioning() const { return cond_; }
  /// Every call checks its input (the sampler's state, or a stage of it) and its output for NaN/Inf,
  /// so that a state that blew up is not blamed on the network. On a GPU the flags are gathered on
  /// the device and checked here (and every `check_every` calls), so that the loop never waits for
  /// the host; on the CPU every call checks at once.
  void check_finite() const;
  /// Defers the checks on the CPU too, checking every `every` calls (the GPU behaviour; for tests).
  void defer_checks(int every);
  /// Names the sampler and counts its steps in error messages: run_sampler calls begin_steps()
  /// before sampling and step_done(i) from the step callback after step i (0-based) of `steps`.
  void begin_steps(std::string sampler, int steps);
  void step_done(int step) const;

 private:
  /// Where a call happened: the step it belongs to (0-based, −1 untracked), its index inside the step.
  struct CallSite {
    double sigma;
    int step, call;
  };
  torch::Tensor evaluate(const torch::Tensor& x, const std::vector<double>& sigma) const;
  /// The conditional inputs (and the unconditional ones) for a batch of `b` on `device`.
  std::vector<torch::Tensor> batch_conds(const std::vector<torch::Tensor>& values, int64_t b,
                                         const torch::Device& device) const;
  bool guided() const;
  [[noreturn]] void fail_state(const CallSite& site) const;
  [[noreturn]] void fail_output(const CallSite& site, bool per_sample) const;
  std::shared_ptr<const Model> model_;
  Conditioning cond_;
  mutable int64_t nfe_ = 0;
  void record_extremes(const torch::Tensor& x, const torch::Tensor& out, const CallSite& site) const;
  /// Deferred checks: row k of extremes_ holds [min x, max x, min D, max D] of the k-th pending call
  /// (written on the device by two reductions per call; NaN and ±Inf show in them), pending_ where
  /// each call happened.
  mutable torch::Tensor extremes_;
  mutable std::vector<CallSite> pending_;
  int check_every_ = 32;
  bool defer_on_cpu_ = false;
  std::string sampler_;
  int steps_ = 0;
  mutable int step_ = -1, call_in_step_ = 0;
};

}  // namespace scoreflow
