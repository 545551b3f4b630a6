#pragma once
/// Γ_t = E‖ε̂(x_t, t)‖²/d per chain timestep (Analytic-DPM, Bao et al., ICLR 2022, ε convention):
/// the running accumulator, the table, its JSON file, and loading a file for a model — which
/// refuses a file estimated for another model or schedule (docs/design.md §5).
#include <torch/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "scoreflow/discrete_chain.h"
#include "scoreflow/model.h"

namespace scoreflow {

/// Where a Γ file came from. A loaded file must match the expected model and schedule (an empty
/// expected field is not checked); the dataset is recorded only (Γ from the training set is meant
/// to be used on a test set).
struct GammaMeta {
  std::string model;
  std::string schedule;
  std::string dataset;
  std::map<std::string, std::string> settings;  ///< num_images, batch, seed, ...
};

/// One batch's per-image values in the form GammaAccumulator merges: count, Σv and Σ(v − Σv/count)².
/// Shard files keep these per batch, so that replaying them in batch order reproduces an unsharded
/// estimate bit for bit.
struct GammaBatchStats {
  int64_t count = 0;
  double sum = 0.0;
  double m2 = 0.0;
  /// From per-sample values [B] (any device, any floating dtype); throws on NaN/Inf.
  static GammaBatchStats of(const torch::Tensor& values);
};

/// Running mean and standard error of per-image ‖ε̂‖²/d at one timestep (Chan et al. merge).
class GammaAccumulator {
 public:
  void add(double value);
  /// Per-sample values, e.g. `per_sample_sq_norm(eps_hat)`; any device, any floating dtype.
  void add(const torch::Tensor& values);
  /// One batch's statistics (add(values) is add(GammaBatchStats::of(values))); count 0 is a no-op.
  void add(const GammaBatchStats& batch);
  int64_t count() const { return count_; }
  double mean() const { return mean_; }
  double std_err() const;  ///< sqrt(sample variance / count); 0 when count < 2

 private:
  int64_t count_ = 0;
  double mean_ = 0.0;
  double m2_ = 0.0;
};

/// ‖ε̂‖²/d per sample: [B, ...] → [B] float64.
torch::Tensor per_sample_sq_norm(const torch::Tensor& eps_hat);

/// One timestep's Γ. `gamma` is `gamma_raw` clipped to [0, 1].
struct GammaEntry {
  int64_t t = 0;
  double gamma = 0.0;
  double gamma_raw = 0.0;
  double std_err = 0.0;
  int64_t count = 0;
};

/// Γ_t = E‖ε̂(x_t, t)‖²/d per timestep in the ε convention (the paper's score-norm Γ is Γ_eps/β̄_t),
/// possibly for a subset of timesteps; values outside [0, 1] are clipped and counted.
class GammaTable {
 public:
  static constexpr const char* kConvention = "eps";

  GammaTable(GammaMeta meta, int64_t num_steps);

  /// Records timestep t ∈ [1, N]; clips the mean to [0, 1] (counted in `num_clipped`).
  void set(int64_t t, double mean, double std_err, int64_t count);
  void set(int64_t t, const GammaAccumulator& acc);

  bool has(int64_t t) const;
  const GammaEntry& entry(int64_t t) const;  ///< throws unless `has(t)`
  std::vector<GammaEntry> entries() const;   ///< ascending t
  /// Γ_t: the estimate when present, else linear interpolation in t between the nearest
  /// estimated timesteps (constant beyond the first/last). Throws when nothing is estimated.
  double eps(int64_t t) const;
  /// The paper's convention E‖∇log q_t‖²/d = Γ_eps/β̄_t.
  double score_norm(int64_t t, const DiscreteChain& chain) const;
  /// Γ for t = 0..N (index 0 holds 0: x_0 carries no noise), interpolated as in `eps`.
  std::vector<double> dense() const;

  int64_t num_clipped() const;  ///< timesteps whose raw mean left [0, 1]
  std::vector<int64_t> clipped_timesteps() const;
  int64_t num_steps() const { return num_steps_; }
  const GammaMeta& meta() const { return meta_; }

  std::string to_json() const;
  /// Parses a Γ file and refuses it (naming the field, the file's value and ours) when its model,
  /// schedule or step count differ from `expect` / `chain`. Accepts convention "eps" or "score"
  /// (converted with the chain's β̄). `source` names the file in messages.
  static GammaTable from_json(const std::string& text, const DiscreteChain& chain, const GammaMeta& expect,
                              const std::string& source = "<json>");
  void save(const std::string& path) const;  ///< atomic (temporary + rename)
  static GammaTable load(const std::string& path, const DiscreteChain& chain, const GammaMeta& expect);

 private:
  GammaMeta meta_;
  int64_t num_steps_;
  std::vector<GammaEntry> entries_;  // index t; count == 0 means absent
};

}  // namespace scoreflow

namespace scoreflow {

/// What a Γ file for `model` must record (model name and schedule).
GammaMeta gamma_meta_for(const Model& model);

/// A Γ file's text, read once: a sampler reads it when it is built and checks it against the
/// model it runs (`gamma_for_model`). Throws Error naming the path when it cannot be read.
struct GammaFile {
  std::string path;
  std::string text;
  static GammaFile read(const std::string& path);
};
/// The table in `file`, refused (naming the field) unless it was estimated for `model`.
GammaTable gamma_for_model(const Model& model, const GammaFile& file);
/// Reads and checks a Γ file for `model` in one go.
GammaTable load_gamma_for(const Model& model, const std::string& path);

}  // namespace scoreflow
