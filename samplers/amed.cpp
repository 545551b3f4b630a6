#include "scoreflow/amed.h"

#include <cmath>
#include <optional>

#include "samplers/amed_steps.h"
#include "samplers/common.h"
#include "samplers/typed.h"
#include "scoreflow/error.h"
#include "scoreflow/registry.h"

namespace scoreflow {
namespace {

/// AMED-Plugin's bases by name (amed::find_base; AMED-Solver's own step is the base "amed").
const std::pair<AmedBase, const char*> kPluginBases[] = {
    {AmedBase::Euler, "euler"}, {AmedBase::Ipndm, "ipndm"}, {AmedBase::Dpmpp2m, "dpmpp_2m"}};

std::string base_name(AmedBase base) {
  for (const auto& [value, name] : kPluginBases)
    if (value == base) return name;
  fail("amed_plugin: unknown base ", static_cast<int>(base));
}

/// AMED-Solver and AMED-Plugin (Zhou et al., CVPR 2024, Alg. 1 and Sec. 4.3). Per interval
/// σ → σ' between positive grid points: (r, c, a) from the predictor, its table, or fixed values;
/// s = σ'^r σ^{1−r}; one model call at (x_mid, a·s); 2 NFE per interval, AFS saving the first.
/// The last interval σ_min → 0 of a grid ending at 0 is not integrated (the intermediate point is
/// undefined at σ' = 0): x at σ_min is the sample, as in the authors' code, unless
/// denoise_to_zero=true spends one NFE on x = D(x, σ_min).
class Amed : public Sampler {
 public:
  Amed(const AmedOptions& options, bool plugin) : plugin_(plugin) {
    const std::string who = plugin ? "amed_plugin" : "amed";
    const std::string &predictor = options.predictor(), &table = options.table();
    const bool fixed = options.r() || options.c() || options.a();
    if (int(!predictor.empty()) + int(!table.empty()) + int(fixed) != 1)
      fail(who, " needs exactly one of predictor=FILE (from scoreflow train-amed), table=FILE.json, or fixed r=,c=,a=");
    if (!plugin && options.base()) fail("amed: base is an option of amed_plugin (AMED-Solver runs on no base solver)");
    std::optional<AmedRecord> record;
    if (!predictor.empty()) {
      predictor_ = std::make_shared<AmedPredictor>(AmedPredictor::load(predictor));
      record = predictor_->record();
      source_ = "AMED predictor '" + predictor + "'";
    } else if (!table.empty()) {
      auto loaded = load_amed_table(table);
      record = table_record_ = loaded.first;
      table_ = loaded.second;
      source_ = "AMED table '" + table + "'";
    } else {
      fixed_ = {{options.r().value_or(0.5)}, {options.c().value_or(1.0)}, {options.a().value_or(1.0)}};
      if (!(fixed_.r[0] >= 0 && fixed_.r[0] <= 1)) fail(who, ": r must be in [0, 1], got ", fixed_.r[0]);
      if (!(fixed_.c[0] > 0)) fail(who, ": c must be > 0, got ", fixed_.c[0]);
      if (!(fixed_.a[0] > 0)) fail(who, ": a must be > 0, got ", fixed_.a[0]);
    }
    // The student a predictor was trained for fixes the base; base may only repeat it.
    const std::string trained = record ? record->student : "";
    if (plugin && trained == "amed")
      fail(source_, " was trained for student 'amed' (AMED-Solver): field 'student' differs (use sampler amed)");
    std::string base = trained.empty() ? "euler" : trained;
    if (options.base()) base = base_name(*options.base());
    base_ = plugin ? &amed::find_base(base, "amed_plugin base") : &amed::find_base("amed", "amed base");
    if (record && record->student != base_->name())
      fail(source_, " was trained for student '", record->student, "', not '", base_->name(),
           "': field 'student' differs", plugin ? "" : " (use sampler amed_plugin)");
    afs_ = options.afs().value_or(record ? record->afs : false);
    if (record && afs_ != record->afs)
      fail(source_, " was trained with afs=", record->afs ? "true" : "false", ": field 'afs' differs");
    denoise_to_zero_ = options.denoise_to_zero();
    if (record) trained_final_ = record->final;
  }

  std::string name() const override { return plugin_ ? "amed_plugin" : "amed"; }
  /// Base solvers keep their order on any refined grid; AMED-Solver's depends on r (amed::Base::order).
  int order() const override { return base_->order(!predictor_ && table_.empty() && fixed_.r[0] == 0.5); }
  int min_steps() const override { return 2; }
  /// steps intervals ending at 0: steps − 1 AMED intervals of 2 NFE each, minus AFS, plus the optional D(x, σ_min).
  int64_t nfe(int steps) const override { return 2 * int64_t(steps - 1) - (afs_ ? 1 : 0) + (denoise_to_zero_ ? 1 : 0); }
  /// steps intervals ending at σ_min: all of them AMED intervals (denoise_to_zero acts only on a
  /// grid ending in 0; on this one FinalStep::Denoise is its equivalent).
  int64_t nfe_above_zero(int steps) const override { return 2 * int64_t(steps) - (afs_ ? 1 : 0); }
  /// The paper's convention (the authors' code: the grid ends at σ_min, denoise_to_zero=False), or
  /// the one a predictor was trained for.
  FinalStep default_final() const override { return trained_final_.value_or(FinalStep::None); }
  void check_final(FinalStep final) const override {
    if (trained_final_ && final != *trained_final_)
      fail(source_, " was trained with final '", final_step_name(*trained_final_), "', not '", final_step_name(final),
           "': field 'final' differs");
  }

  torch::Tensor sample(const Denoiser& denoise, torch::Tensor x, const std::vector<double>& sigmas, NoiseSource&,
                       const StepCallback& callback) const override {
    check_grid(*this, sigmas);
    const Model& model = denoise.model();
    const int n = static_cast<int>(sigmas.size()) - 1;
    const int intervals = sigmas.back() == 0 ? n - 1 : n;
    // Coefficients per interval: fixed, from the table, or from the predictor (table mode: once;
    // feature mode: per step from the bottleneck at (x, σ)).
    std::vector<AmedCoefficients> rows;
    if (predictor_) {
      predictor_->check_compatible(model, sigmas);
      if (predictor_->record().features && !model.has_features())
        fail(source_, " reads bottleneck features, but model ", model.name(), " exposes none (metadata 'features')");
      if (!predictor_->record().features)
        for (const AmedTableRow& t : predictor_->table()) rows.push_back({{t.r}, {t.c}, {t.a}});
    } else if (!table_.empty()) {
      check_amed_record(table_record_, model, sigmas, source_);
      for (const AmedTableRow& t : table_) rows.push_back({{t.r}, {t.c}, {t.a}});
    } else {
      rows.assign(intervals, fixed_);
    }
    x = amed::solve(
        *base_, denoise, x, sigmas, intervals, afs_,
        [&](int i, const torch::Tensor& xi, double sigma, double sigma_next, bool analytic) {
          return rows.empty() ? feature_coefficients(denoise, xi, sigma, sigma_next, analytic) : rows[i];
        },
        [&](int i, double sigma_next) {
          if (callback) callback(i, n, sigma_next);
        });
    if (intervals < n) {
      // σ_min → 0.
      if (denoise_to_zero_) x = denoise(x, sigmas[intervals]);
      if (callback) callback(n - 1, n, 0.0);
    }
    return x;
  }

 private:
  AmedCoefficients feature_coefficients(const Denoiser& denoise, const torch::Tensor& x, double sigma,
                                        double sigma_next, bool analytic) const {
    const int64_t dim = predictor_->record().feature_dim;
    // As the authors: no network call at the AFS step, so zero features there.
    torch::Tensor f = analytic ? torch::zeros({x.size(0), dim}, x.options().dtype(torch::kFloat32))
                               : denoise.model().features(x, {sigma}, denoise.conditioning().labels);
    return predictor_->predict(f, sigma, sigma_next);
  }

  bool plugin_;
  const amed::Base* base_ = nullptr;
  bool afs_ = false, denoise_to_zero_ = false;
  std::optional<FinalStep> trained_final_;
  std::shared_ptr<AmedPredictor> predictor_;
  std::vector<AmedTableRow> table_;
  AmedRecord table_record_;
  AmedCoefficients fixed_;
  std::string source_;
};

}  // namespace

std::unique_ptr<Sampler> detail::make_amed(const AmedOptions& options) {
  return std::make_unique<Amed>(options, false);
}
std::unique_ptr<Sampler> detail::make_amed_plugin(const AmedPluginOptions& options) {
  return std::make_unique<Amed>(options, true);
}

namespace {

/// The "k=v" options of amed and amed_plugin (which also takes base): a key not given stays unset.
AmedOptions read_amed_options(const KeyValueArgs& args, bool plugin) {
  AmedOptions options;
  options.predictor(args.get_string("predictor", "")).table(args.get_string("table", ""));
  if (args.has("r")) options.r(args.get_double("r", 0.5));
  if (args.has("c")) options.c(args.get_double("c", 1.0));
  if (args.has("a")) options.a(args.get_double("a", 1.0));
  if (args.has("afs")) options.afs(detail::read_afs(args));
  options.denoise_to_zero(detail::read_denoise_to_zero(args));
  if (plugin && args.has("base")) {
    const std::string name = amed::find_base(args.get_string("base", ""), "amed_plugin base").name();
    if (name == "amed") fail("amed_plugin base must be euler, ipndm or dpmpp_2m; use sampler amed for AMED-Solver");
    for (const auto& [value, base] : kPluginBases)
      if (name == base) options.base(value);
  }
  return options;
}

}  // namespace

std::unique_ptr<Sampler> make_amed(const KeyValueArgs& args) {
  return detail::make_amed(read_amed_options(args, false));
}
std::unique_ptr<Sampler> make_amed_plugin(const KeyValueArgs& args) {
  return detail::make_amed_plugin(read_amed_options(args, true));
}

}  // namespace scoreflow
