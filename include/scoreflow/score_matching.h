#pragma once
/// Score matching against an exact oracle (docs/design.md §6): DSM(t) = E‖ε_θ(x_t) − ε‖², the exact
/// SM(t) = E‖ε_θ − ε*‖² against a distribution whose denoiser is known in closed form (a dataset's
/// smoothed empirical distribution, or an analytic builtin), and the identity
/// DSM − SM = d·(1 − Γ*_t) with Γ*_t = E‖ε*‖²/d (Vincent 2011), which holds for any network.
///
/// Everything is in σ-space: x = x0 + σ·ε, ε_θ = (x − D(x, σ))/σ. For a VP model x_t = α x0 + s ε
/// is fed as x = x_t/α = x0 + (s/α) ε, so the σ-space ε *is* the VP ε and ε_θ is the network's own
/// ε-prediction. Score units (σ-space, ∇_x log p_σ = −ε*/σ) are ε units divided by σ².
#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

#include "scoreflow/checkpoint.h"
#include "scoreflow/conditioning.h"
#include "scoreflow/model.h"

namespace scoreflow::eval {

/// The data distribution p_0 with an exact σ-space denoiser. `data` is either an analytic builtin
/// ("builtin:gaussian|gmm|ring8[:k=v,...]", sampled exactly) or a dataset path (.npy/.npz point
/// arrays [N, ...shape], image folders, idx): then p_0 is its empirical distribution and p_σ the
/// σ-smoothed one (whole-dataset softmax, float64; EmpiricalModel).
class ExactTarget {
 public:
  /// `like` gives the expected sample shape and the data range for image datasets; `limit` > 0
  /// keeps the first `limit` dataset items.
  ExactTarget(const std::string& data, const ModelMetadata& like, int64_t limit = 0);
  /// The target for `model`'s samples: as above with its metadata, except that a latent model with
  /// an encoder reads a dataset's images and encodes them (open_model_dataset).
  ExactTarget(const std::string& data, std::shared_ptr<const Model> model, int64_t limit = 0);
  /// Values per sample.
  int64_t dim() const { return dim_; }
  /// One line: what the target is.
  std::string describe() const { return describe_; }
  /// True for a dataset's empirical distribution.
  bool empirical() const { return data_rows_.defined(); }
  /// Dataset items (0 for an analytic target).
  int64_t size() const { return data_rows_.defined() ? data_rows_.size(0) : 0; }
  /// n draws from p_0, [n, d] float64 CPU. Datasets: without replacement while n ≤ size(); `items`,
  /// when given, receives the dataset index of each draw ([n] int64; undefined for analytic targets).
  torch::Tensor sample(int64_t n, at::Generator& gen, torch::Tensor* items = nullptr) const;
  /// Exact E[x0 | x0 + σε = x] for x [B, d] (any float dtype); returns [B, d] float64 CPU.
  torch::Tensor denoise(const torch::Tensor& x, double sigma) const;
  /// The oracle as a Model (the sample shape of `like`), e.g. to run its exact PF-ODE.
  std::shared_ptr<const Model> model() const { return model_; }
  /// For a one-component Gaussian target: its mean [d] and covariance [d, d] (float64); else false.
  bool gaussian(torch::Tensor* mean, torch::Tensor* cov) const;
  /// Mean [d] and covariance [d, d] of p_0 (exact for analytic targets, of the items for datasets).
  std::pair<torch::Tensor, torch::Tensor> moments() const;

 private:
  /// `rows`, when defined, are the dataset's rows already loaded.
  ExactTarget(const std::string& data, const ModelMetadata& like, int64_t limit, torch::Tensor rows);
  static torch::Tensor load_rows_for(const std::string& data, const std::shared_ptr<const Model>& model, int64_t limit);

  std::shared_ptr<Model> model_;
  torch::Tensor data_rows_;                    // [N, d] float64 (empirical)
  torch::Tensor means_, variances_, weights_;  // analytic mixture
  int64_t dim_ = 0;
  std::string describe_;
};

/// Rows [N, d] float64 of a point/image dataset whose items have `like.shape`: float .npy/.npz
/// arrays [N, ...shape] (or [N, d]) are taken as they are (data range); image sources go through
/// io::open_dataset with the model's data range. Throws naming the file and the shape mismatch.
torch::Tensor load_data_rows(const std::string& path, const ModelMetadata& like, int64_t limit = 0);
/// Rows for `model`'s samples: load_data_rows with its metadata, or, for a latent model with an
/// encoder, the dataset's images encoded (open_model_dataset).
torch::Tensor load_data_rows(const std::string& path, std::shared_ptr<const Model> model, int64_t limit = 0);

/// K evaluation noise levels over a schedule's range, descending: for vp_discrete K of its discrete
/// timesteps (evenly spaced indices, σ_n of the chain), otherwise log-uniform in σ.
std::vector<double> evaluation_sigmas(const NoiseSchedule& schedule, int k);
/// The network time (discrete index for vp_discrete) of each σ, for reports.
std::vector<double> network_times(const NoiseSchedule& schedule, const std::vector<double>& sigmas);

struct ScoreMatchingOptions {
  std::vector<double> sigmas;  ///< noise levels to evaluate (see evaluation_sigmas)
  int64_t num_images = 256;    ///< x0 draws per σ (one noise draw each)
  int64_t batch = 64;          ///< network batch size (results do not depend on it)
  uint64_t seed = 0;           ///< σ level k draws from a generator seeded by seed + 1000003·k
  /// A conditional model's inputs per dataset item (item_conditions over the target's size());
  /// empty for models without conditions.
  ItemConditions conditions;
};

/// One σ level. Totals are sums over the d values of a sample, then means over samples; `_se` are
/// standard errors of those means (sample std / √n).
struct ScoreMatchingRow {
  double sigma = 0;
  double dsm = 0, dsm_se = 0;            ///< E‖ε_θ − ε‖²
  double sm = 0, sm_se = 0;              ///< E‖ε_θ − ε*‖² (exact score matching, ε units)
  double gamma_star = 0;                 ///< Γ*_t = E‖ε*‖²/d
  double gap = 0;                        ///< DSM − SM (measured)
  double gap_expected = 0;               ///< d·(1 − Γ*_t)
  double residual = 0, residual_se = 0;  ///< mean and s.e. of the per-sample (DSM − SM) − (d − ‖ε*‖²)
  int64_t d = 0, n = 0;
};

/// DSM, exact SM and the identity check of `model` against `target`, per σ (float64 accumulation;
/// the network sees float32 inputs on its device). Each level's network work goes through `memo`
/// (as "sm-level-KKK"), so that a resumable caller redoes no finished level.
std::vector<ScoreMatchingRow> score_matching(const Model& model, const ExactTarget& target,
                                             const ScoreMatchingOptions& options, const io::Memo& memo = {});

}  // namespace scoreflow::eval
