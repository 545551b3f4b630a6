// Analytic-DDPM / Analytic-DDIM (Bao et al., ICLR 2022) and SN-/NPR-DPM (Bao et al., ICML 2022):
// the λ²-family step on the model's discrete chain with the optimal reverse variance.
#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

#include "samplers/lincomb.h"
#include "samplers/typed.h"
#include "scoreflow/discrete_chain.h"
#include "scoreflow/error.h"
#include "scoreflow/gamma_table.h"
#include "scoreflow/registry.h"

namespace scoreflow {
namespace {

enum class VarianceSource { Gamma, SecondMoment, Residual };

/// The options of the whole family in one place (analytic_ddpm has η = 1 fixed, sn/npr_dpm no Γ file).
struct Settings {
  double eta, sigma2_clip;
  bool clip_x0, clip_variance, mean_last, noise;
  AnalyticMean mean;
  std::string gamma;

  template <class Options>
  static Settings from(const Options& o, double eta, std::string gamma) {
    return {eta, o.sigma2_clip(), o.clip_x0(), o.clip_variance(), o.mean_last(), o.noise(), o.mean(), std::move(gamma)};
  }
};

/// p(x_s|x_t) = N(μ, σ²) in VP coordinates (x_t = α_t·x), with σ² from Γ (Analytic-DPM, Thm 1),
/// or per element from a second-moment head (SN-DPM) or a residual head (NPR-DPM). The mean, as
/// the authors' code writes it (baofff/Analytic-DPM, core/inference/sampler):
///   mean=posterior: μ = coef_xt·x_t + γ·x̂0, the ε it implies recomputed from the clamped x̂0
///                   (reverse_ddpm_ms_eps; default of analytic_ddpm, sn_dpm, npr_dpm);
///   mean=eps:       μ = sqrt(ᾱ_s)·x̂0 + sqrt(β̄_s − λ²)·ε̂ with the network's own ε̂
///                   (reverse_ddim_ms_eps; default of analytic_ddim).
/// The two agree unless the clamp acts. Heuristics of the paper, each switchable: clamp x̂0 to the
/// data range, clip the variance to Thm 2's bounds, cap the noise of the step that produces x_{τ1}
/// at (y·(2/255)·sqrt(π/2))² (y = 2 for Analytic-DDPM and 1 for Analytic-DDIM, as the authors'
/// run scripts), output the mean at the last step; `noise=false` keeps only the means.
class AnalyticDpm : public Sampler {
 public:
  AnalyticDpm(std::string name, VarianceSource source, const Settings& settings)
      : name_(std::move(name)), source_(source) {
    eta_ = settings.eta;
    if (!(eta_ >= 0 && eta_ <= 1)) fail(name_, ": eta must be in [0, 1], got ", eta_);
    clip_x0_ = settings.clip_x0;
    clip_variance_ = settings.clip_variance;
    mean_last_ = settings.mean_last;
    noise_ = settings.noise;  // false: means only (η = 0 and no clamp is then DDIM)
    y_ = settings.sigma2_clip;
    eps_mean_ = settings.mean == AnalyticMean::Eps;
    if (y_ < 0) fail(name_, ": sigma2_clip must be >= 0 (0 = off), got ", y_);
    if (source_ == VarianceSource::Gamma) {
      const std::string& path = settings.gamma;
      if (path.empty()) fail(name_, " needs gamma=FILE.json (from scoreflow estimate-gamma)");
      try {
        gamma_file_ = GammaFile::read(path);
      } catch (const Error& e) {
        fail(name_, ": ", e.what());
      }
    }
  }
  std::string name() const override { return name_; }
  int order() const override { return 1; }
  bool stochastic() const override { return true; }
  int64_t nfe(int steps) const override { return steps; }

  torch::Tensor sample(const Denoiser& denoise, torch::Tensor x, const std::vector<double>& sigmas, NoiseSource& noise,
                       const StepCallback& callback) const override {
    check_grid(*this, sigmas);
    const Model& model = denoise.model();
    const DiscreteChain chain = chain_of(model);
    const DataRange range{model.metadata().data_min, model.metadata().data_max};
    std::unique_ptr<GammaTable> gamma;
    if (source_ == VarianceSource::Gamma) gamma = std::make_unique<GammaTable>(gamma_for_model(model, gamma_file_));
    if (source_ != VarianceSource::Gamma) {
      const Head want = source_ == VarianceSource::SecondMoment ? Head::Eps2 : Head::EpsC;
      if (model.metadata().head != want)
        fail(name_, " needs a model with metadata head '", head_name(want), "'; ", model.name(), " has '",
             head_name(model.metadata().head), "'");
    }
    std::vector<int64_t> ts;
    for (double s : sigmas) ts.push_back(chain_timestep(model, s));
    const int n = static_cast<int>(sigmas.size()) - 1;
    for (int i = 0; i < n; ++i) {
      const int64_t t = ts[i], s = ts[i + 1];
      torch::Tensor denoised, head;
      if (source_ == VarianceSource::Gamma)
        denoised = denoise(x, sigmas[i]);
      else
        std::tie(denoised, head) = denoise.with_head(x, sigmas[i]);
      const torch::Tensor x0 = clip_x0_ ? denoised.clamp(range.lo, range.hi) : denoised;
      const StepCoefficients c = step_coefficients(chain, s, t, s == 0 ? 0.0 : eta_);
      // Mean of p(x_s|x_t) = coef_xt·x_t + γ·x̂0 with x_t = sqrt(ᾱ_t)·x (at s = 0 it is x̂0 itself:
      // ᾱ_0 = 1, β̄_0 = 0), plus the noise, all rescaled back to σ-space by 1/sqrt(ᾱ_s): one
      // combination with host coefficients (detail::lincomb).
      const double scale = s == 0 ? 1.0 : 1.0 / std::sqrt(chain.alpha_bar(s));
      // coef_xt·sqrt(ᾱ_t) = sqrt(β̄_s − λ²)/σ_t: the weight of x_t in both forms, and of ε̂·σ_t = x − D.
      const double w_x = scale * c.coef_xt * std::sqrt(chain.alpha_bar(t));
      std::vector<detail::Term> terms;
      if (eps_mean_ && clip_x0_)  // sqrt(ᾱ_s)·x̂0 + sqrt(β̄_s − λ²)·ε̂, ε̂ = (x − D)/σ_t the network's
        terms = {{w_x, x}, {-w_x, denoised}, {scale * std::sqrt(chain.alpha_bar(s)), x0}};
      else  // coef_xt·x_t + γ·x̂0 (without the clamp the same as the eps form)
        terms = {{w_x, x}, {scale * c.gamma, x0}};
      if (noise_ && !(s == 0 && mean_last_)) {
        // The step that produces x_{τ1} (the last noisy state) gets its noise capped: the one before
        // the step into 0, or the last step of a grid that stops at τ_1 (final none/denoise).
        const bool capped = y_ > 0 && (ts[n] == 0 ? i + 2 == n : i + 1 == n);
        if (source_ == VarianceSource::Gamma) {
          double var = analytic_variance(chain, s, t, gamma->eps(t), s == 0 ? 0.0 : eta_, range, clip_variance_);
          if (capped) var = std::min(var, sigma2_clip_threshold(y_));
          terms.push_back({scale * std::sqrt(var), noise.randn_like(x)});
        } else {
          const torch::Tensor eps_hat = (x - denoised) / sigmas[i];
          torch::Tensor var = source_ == VarianceSource::SecondMoment
                                  ? sn_dpm_variance(chain, s, t, head, eps_hat, s == 0 ? 0.0 : eta_, range)
                                  : npr_dpm_variance(chain, s, t, head, s == 0 ? 0.0 : eta_, range);
          if (capped) var = var.clamp_max(sigma2_clip_threshold(y_));
          terms.push_back({scale, var.sqrt().to(x.scalar_type()) * noise.randn_like(x)});
        }
      }
      x = detail::lincomb(terms);
      if (callback) callback(i, n, sigmas[i + 1]);
    }
    return x;
  }

 private:
  std::string name_;
  VarianceSource source_;
  double eta_ = 1, y_ = 2;
  bool clip_x0_ = true, clip_variance_ = true, mean_last_ = true, noise_ = true, eps_mean_ = false;
  GammaFile gamma_file_;  // read when built, checked against the model when run
};

}  // namespace

std::unique_ptr<Sampler> detail::make_analytic_ddpm(const AnalyticDdpmOptions& options) {
  return std::make_unique<AnalyticDpm>("analytic_ddpm", VarianceSource::Gamma,
                                       Settings::from(options, 1.0, options.gamma()));
}
std::unique_ptr<Sampler> detail::make_analytic_ddim(const AnalyticDdimOptions& options) {
  return std::make_unique<AnalyticDpm>("analytic_ddim", VarianceSource::Gamma,
                                       Settings::from(options, options.eta(), options.gamma()));
}
std::unique_ptr<Sampler> detail::make_sn_dpm(const SnDpmOptions& options) {
  return std::make_unique<AnalyticDpm>("sn_dpm", VarianceSource::SecondMoment,
                                       Settings::from(options, options.eta(), ""));
}
std::unique_ptr<Sampler> detail::make_npr_dpm(const NprDpmOptions& options) {
  return std::make_unique<AnalyticDpm>("npr_dpm", VarianceSource::Residual, Settings::from(options, options.eta(), ""));
}

namespace {

/// The "k=v" options shared by the family, in the order the samplers always read them.
template <class Options>
Options read_analytic_options(const KeyValueArgs& args, const std::string& name) {
  Options options;
  if constexpr (!std::is_same_v<Options, AnalyticDdpmOptions>)  // Analytic-DDPM: η = 1
    options.eta(args.get_double("eta", options.eta()));
  options.clip_x0(args.get_bool("clip_x0", options.clip_x0()))
      .clip_variance(args.get_bool("clip_variance", options.clip_variance()))
      .mean_last(args.get_bool("mean_last", options.mean_last()))
      .noise(args.get_bool("noise", options.noise()))
      .sigma2_clip(args.get_double("sigma2_clip", options.sigma2_clip()));
  const std::string mean = args.get_string("mean", options.mean() == AnalyticMean::Eps ? "eps" : "posterior");
  if (mean != "posterior" && mean != "eps") fail(name, ": mean must be posterior or eps, got '", mean, "'");
  options.mean(mean == "eps" ? AnalyticMean::Eps : AnalyticMean::Posterior);
  if constexpr (!std::is_same_v<Options, SnDpmOptions>)  // the Γ samplers
    options.gamma(args.get_string("gamma", options.gamma()));
  return options;
}

}  // namespace

std::unique_ptr<Sampler> make_analytic_ddpm(const KeyValueArgs& args) {
  return detail::make_analytic_ddpm(read_analytic_options<AnalyticDdpmOptions>(args, "analytic_ddpm"));
}
std::unique_ptr<Sampler> make_analytic_ddim(const KeyValueArgs& args) {
  return detail::make_analytic_ddim(read_analytic_options<AnalyticDdimOptions>(args, "analytic_ddim"));
}
std::unique_ptr<Sampler> make_sn_dpm(const KeyValueArgs& args) {
  return detail::make_sn_dpm(read_analytic_options<SnDpmOptions>(args, "sn_dpm"));
}
std::unique_ptr<Sampler> make_npr_dpm(const KeyValueArgs& args) {
  return detail::make_npr_dpm(read_analytic_options<NprDpmOptions>(args, "npr_dpm"));
}

}  // namespace scoreflow
