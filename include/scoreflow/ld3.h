#pragma once
/// LD3 (Tong, Hoang, Liu, Van den Broeck, Niepert, "Learning to Discretize Denoising Diffusion ODEs",
/// ICLR 2025; reference code vinhsuhi/LD3): the N step locations of a student solver are learned by
/// differentiating its output with respect to them. A teacher (a fine-step solver) maps warm-up noises
/// to targets; the student runs on a grid built from free parameters ξ (softmax → cumulative steps in
/// log σ, so the grid stays strictly decreasing between σ_max and σ_min), and Adam lowers the L2
/// distance to the targets, optionally with the paper's relaxed objective (the student's input noise
/// may move inside a ball of radius r around the teacher's). The grid with the lowest validation loss
/// is kept.
#include <torch/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "scoreflow/args.h"
#include "scoreflow/checkpoint.h"
#include "scoreflow/final_step.h"
#include "scoreflow/model.h"
#include "scoreflow/run.h"
#include "scoreflow/sampler.h"

namespace scoreflow {

/// The grid ξ stands for: u = softmax(ξ) ([N], float64), log σ_i = log σ_max − log(σ_max/σ_min)·Σ_{k<i} u_k
/// for i = 0..N, so σ_0 = σ_max and σ_N = σ_min exactly; under final zero σ_N is replaced by 0 (the last
/// positive point σ_{N−1} stays free in (σ_min, σ_max), as a GITS grid's last point is). [N + 1] float64,
/// differentiable in ξ.
torch::Tensor ld3_grid(const torch::Tensor& xi, double sigma_max, double sigma_min, FinalStep final);

/// A library sampler's update re-expressed on a tensor grid, so that autograd reaches the σ's: euler,
/// ipndm (fixed coefficients), dpmpp_2m and unipc, with their args (afs included; denoise_to_zero and
/// dynamic thresholding are refused). On the same grid it computes what the library sampler computes.
/// D(x, σ) is differentiable in x through the model; its σ-derivative, which the model does not give
/// (it takes σ as a host number), is a central difference in log σ.
class Ld3Student {
 public:
  /// Throws Error naming the field 'sampler' and the valid names for another sampler, or the arg.
  Ld3Student(const std::string& sampler, const std::string& args = "");
  /// x: [B, ...shape] at sigmas[0]; sigmas: [n + 1] float64, strictly decreasing, last ≥ 0 (may require
  /// grad). Returns x at sigmas[n], in x's dtype.
  torch::Tensor sample(const Denoiser& denoise, const torch::Tensor& x, const torch::Tensor& sigmas) const;
  /// The library sampler it re-expresses (its NFE counts, minimum steps, name).
  const Sampler& sampler() const { return *sampler_; }
  const std::string& args() const { return args_; }

 private:
  std::shared_ptr<const Sampler> sampler_;
  std::string name_, args_;
  bool afs_ = false, bh1_ = false;  // unipc: variant bh1
  int max_order_ = 1;               // ipndm max_order, dpmpp_2m 2, unipc order
  int lower_order_final_ = 0;       // samplers/common.h's LowerOrderFinal, as an int
};

/// The sampler names Ld3Student accepts.
const std::vector<std::string>& ld3_student_names();

struct Ld3Options {
  /// The teacher's grid σ_max … σ_min (and optionally the final 0): it fixes the student's endpoints
  /// σ_max (first point) and σ_min (last positive point). The teacher runs on it without the final 0
  /// under final none.
  std::vector<double> teacher_sigmas;
  int steps = 0;                      ///< the student's intervals N
  FinalStep final = FinalStep::Zero;  ///< zero: the grid ends in 0; none: at σ_min (denoise is refused)
  int64_t train_samples = 256;        ///< training noises: seeds seed, seed + 1, …
  int64_t valid_samples = 64;         ///< validation noises: the next seeds after the training ones
  uint64_t seed = 0;
  int iterations = 200;  ///< Adam steps
  int train_batch = 16;  ///< training samples per step (at most train_samples)
  double lr = 0.02;      ///< Adam's learning rate on ξ
  double ball = -1;  ///< r: ‖ε' − ε‖₂ ≤ r for the student's noise; < 0: the paper's 0.001·d/N²; 0: off
  double shift_lr = -1;                       ///< SGD step of ε' (< 0: the paper's 12/N)
  int validate_every = 10;                    ///< validation (and a resumable checkpoint) every this many steps
  int teacher_batch = 256;                    ///< samples per denoiser call for the teacher and validation
  torch::ScalarType dtype = torch::kFloat32;  ///< the state's dtype
  /// The samples' conditioning, as GitsOptions::conditioning: one `labels`/`cond_rows` entry per
  /// sample, training samples 0 … T − 1 first, then the validation samples T … T + V − 1 (seeds
  /// seed + k throughout); the teacher targets, the student in training (each minibatch's own
  /// rows) and in validation all see their samples' Conditioning.
  SampleJob conditioning;
};

struct Ld3Result {
  std::vector<double> sigmas;          ///< the kept grid σ_0 … σ_N (0 under final zero)
  std::vector<double> initial_sigmas;  ///< ξ = 0: uniform in log σ
  double valid_loss = 0;               ///< its validation loss (mean over samples of the per-element MSE)
  double initial_valid_loss = 0;       ///< the initial grid's
  int best_iteration = 0;              ///< the step after which it was found (0: the initial grid)
  int64_t resumed = 0;                 ///< teacher blocks and checkpoints found in the memo
};

/// (phase "teacher" or "train", done, total) after each teacher block and each training step.
using Ld3Progress = std::function<void(const std::string& phase, int64_t done, int64_t total)>;

/// Runs LD3. Finished teacher blocks ("ld3-teacher-<first sample>") and checkpoints ("ld3-iter-<step>":
/// ξ, Adam's state, the best grid so far, the moved noises) go through `memo`, so a run over a memo that
/// a killed run left continues from its last checkpoint and ends exactly where an uninterrupted run
/// ends. Throws Error for a stochastic teacher, a bad teacher grid, steps below the student's minimum,
/// or a bad option (naming it).
Ld3Result search_ld3(std::shared_ptr<const Model> model, const Ld3Student& student, const Sampler& teacher,
                     const Ld3Options& options, const io::Memo& memo = {}, const Ld3Progress& progress = {});

}  // namespace scoreflow
