#pragma once
/// AMED (Zhou, Chen, Wang, Chen, "Fast ODE-based Sampling for Diffusion Models in Around 5 Steps",
/// CVPR 2024): a tiny predictor g_φ gives, per step σ → σ', the intermediate point
/// s = σ'^r σ^{1−r}, a direction scale c and a time scale a (docs/design.md §4). This header is the
/// public face: the predictor file, its per-step table form, and training. All of AMED lives next
/// to each other in samplers/: amed_predictor.{h,cpp} (the torch::nn network, private so that only
/// files that train or run it see <torch/torch.h>; its file and table formats), amed_train.cpp
/// (training and validation), amed.cpp (the amed and amed_plugin samplers) and amed_steps.{h,cpp}
/// (the bases and teachers, composed of the solvers' step primitives in samplers/steps.h).
#include <torch/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "scoreflow/final_step.h"
#include "scoreflow/model.h"

namespace scoreflow {

/// What a predictor was trained for. Saved with it; sampling refuses a grid or model that differs.
struct AmedRecord {
  std::string student = "amed";  ///< amed | euler | ipndm | dpmpp_2m (the last three: AMED-Plugin bases)
  std::string teacher = "heun";  ///< heun | ipndm | dpmpp_2m
  int steps = 0;                 ///< grid intervals, as `--steps` (with final zero the last is σ_min → 0)
  int M = 1;                     ///< teacher points inserted per interval
  bool afs = false;              ///< analytical first step
  double scale_dir = 0.01;       ///< c ∈ [1 − scale_dir, 1 + scale_dir]
  double scale_time = 0.0;       ///< a ∈ [1 − scale_time, 1 + scale_time]
  int feature_dim = 64;          ///< bottleneck features F
  bool features = false;         ///< trained on the model's features (false: table mode, zeros)
  std::vector<double> sigmas;    ///< the student grid, σ_0 … σ_min, 0
  std::string schedule;          ///< NoiseSchedule::describe() of the model
  std::string model;             ///< Model::name() (informational)
  std::string model_hash;        ///< the model's fingerprint (model_fingerprint)
  std::string schedule_name;     ///< grid name and args used in training (informational)
  int64_t trajectories = 0;      ///< training trajectories seen
  uint64_t seed = 0;             ///< training seed (of the kept run with train-amed --restarts)
  double validation_rms = -1;    ///< end-to-end RMS vs the teacher (amed_validation_rms); -1: not measured

  /// The sampling convention trained for: none (the paper's, the grid ends at σ_min), denoise, or zero
  /// (the grid ends in 0, its last interval not integrated; files written before the field). Sampling
  /// under another is refused.
  FinalStep final = FinalStep::Zero;
};

/// Per-step coefficients: one row per sample (feature mode) or one row for the batch (table mode).
struct AmedCoefficients {
  std::vector<double> r, c, a;  ///< each [B] or [1]
};

/// One row of the table form: the step σ → σ' with its (r, s, c, a).
struct AmedTableRow {
  double sigma, sigma_next, r, s, c, a;
};

/// The AMED predictor g_φ with its record. Copies share the network.
class AmedPredictor {
 public:
  /// A freshly initialised network (weights from torch's global generator) for `record`.
  explicit AmedPredictor(AmedRecord record);
  /// Reads a file written by save(); throws Error naming the file when it is not one.
  static AmedPredictor load(const std::string& path);
  /// One file: the network's parameters and the record (JSON) in a torch serialize archive; atomic.
  void save(const std::string& path) const;

  const AmedRecord& record() const { return record_; }
  AmedRecord& record() { return record_; }
  /// The network (samplers/amed_predictor.h: AmedNet); opaque here.
  std::shared_ptr<void> net() const { return net_; }
  void to(torch::Device device);

  /// (r, c, a) for the step σ → σ' as [B] float32 tensors that carry gradients when the network's
  /// parameters do. features: [B, F] (zeros in table mode), any device/dtype.
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> forward(const torch::Tensor& features, double sigma,
                                                                  double sigma_next) const;
  /// Host coefficients for sampling (no gradients).
  AmedCoefficients predict(const torch::Tensor& features, double sigma, double sigma_next) const;
  /// Table mode: the per-step (r, s, c, a) on the record's grid (throws for a feature-mode predictor).
  std::vector<AmedTableRow> table() const;

  /// Throws Error naming the first field that differs: "model_hash", "schedule", "sigmas", ...
  void check_compatible(const Model& model, const std::vector<double>& sigmas) const;

 private:
  AmedRecord record_;
  std::shared_ptr<void> net_;
};

/// The table form (JSON): the record's fields plus "table": [{sigma, sigma_next, r, s, c, a}, ...].
void save_amed_table(const std::string& path, const AmedRecord& record, const std::vector<AmedTableRow>& rows);
std::pair<AmedRecord, std::vector<AmedTableRow>> load_amed_table(const std::string& path);
/// The same compatibility check for a table's record.
void check_amed_record(const AmedRecord& record, const Model& model, const std::vector<double>& sigmas,
                       const std::string& source);

/// The grid (σ_0 … σ_min, 0) that the predictor= or table= file in `sampler_args` was trained on,
/// for commands given no grid of their own; empty when `sampler` is not amed / amed_plugin or the
/// args name no file (fixed r, c, a). Throws Error naming the file when it cannot be read.
std::vector<double> amed_trained_sigmas(const std::string& sampler, const std::string& sampler_args);

/// Teacher/student pairs the method defines: amed ← heun, euler ← heun, ipndm ← ipndm,
/// dpmpp_2m ← dpmpp_2m. Throws Error listing them otherwise.
void check_amed_pair(const std::string& student, const std::string& teacher);

struct AmedTrainOptions {
  std::string student = "amed", teacher = "heun";
  std::vector<double> sigmas;          ///< student grid: ends at σ_min (none/denoise) or in 0 (zero: not trained)
  FinalStep final = FinalStep::None;   ///< the sampling convention, recorded (AMED's paper: none)
  std::vector<double> teacher_sigmas;  ///< refined grid over σ_0..σ_min; empty: M log-uniform points per interval
  int M = 1;
  bool afs = true;
  int64_t num_trajectories = 10000;
  int batch = 128;
  double lr = 5e-3;
  double scale_dir = 0.01, scale_time = 0.0;
  uint64_t seed = 0;
  std::string schedule_name;  ///< recorded only
  /// Conditioned models: the Conditioning (labels, conditions, guidance) of trajectories
  /// [first, first + count), for training and validation alike; empty: none.
  std::function<Conditioning(int64_t first, int64_t count)> conditioning;
};

/// One optimiser step: (trajectory batch index, student step n, loss = mean_b ‖x_stu − x_tea‖²).
using AmedLossCallback = std::function<void(int64_t batch_index, int step, double loss)>;

/// Trains g_φ (Adam) on teacher trajectories from fresh noise, one student step at a time with the
/// per-step loss ‖x_stu(n+1) − x_tea(n+1)‖²; single-step students (amed, euler) start each step
/// from the teacher's state, multistep ones (ipndm, dpmpp_2m) from their own, with their history.
/// Tensors live on model->device().
AmedPredictor train_amed(std::shared_ptr<const Model> model, const AmedTrainOptions& options,
                         const AmedLossCallback& on_step = {});

/// End-to-end check of a trained predictor: RMS over `num` fresh trajectories (noise from `seed`,
/// drawn as in training) of ‖x_student − x_teacher‖ at σ_min, the student solving the whole grid
/// with `predictor` and the teacher solving the refined grid of `options`, both from the same noise.
/// The per-step training loss restarts single-step students from the teacher's state; this measures
/// what sampling gets. Used by train-amed --restarts to keep the best run.
double amed_validation_rms(std::shared_ptr<const Model> model, const AmedTrainOptions& options,
                           const AmedPredictor& predictor, int64_t num, uint64_t seed);

/// M points inserted per interval between positive grid points, log-uniform; the trailing 0 dropped.
std::vector<double> refine_sigmas_log(const std::vector<double>& sigmas, int M);

}  // namespace scoreflow
