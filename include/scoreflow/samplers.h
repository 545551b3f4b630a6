#pragma once
/// Samplers built from typed options, for library use without the "k=v" strings:
///   scoreflow::DpmppMultistep sampler(scoreflow::DpmppOptions().order(3));
///   scoreflow::run_sampler(sampler, model, job);
/// Each class is the registry's sampler of the same name (make_sampler("dpmpp_3m") builds the same
/// one from DpmppOptions().order(3)): same samples, NFE and errors. Options are checked in the
/// constructor (scoreflow::Error naming the option); the object is a value (copies share the const
/// implementation).
#include <memory>
#include <string>
#include <vector>

#include "scoreflow/sampler.h"
#include "scoreflow/sampler_options.h"

namespace scoreflow {

/// A Sampler that forwards to the implementation its typed options built (samplers/<name>.cpp).
template <class Options>
class TypedSampler : public Sampler {
 public:
  const Options& options() const { return options_; }
  std::string name() const override { return impl_->name(); }
  int order() const override { return impl_->order(); }
  bool stochastic() const override { return impl_->stochastic(); }
  int64_t nfe(int steps) const override { return impl_->nfe(steps); }
  int64_t nfe_above_zero(int steps) const override { return impl_->nfe_above_zero(steps); }
  FinalStep default_final() const override { return impl_->default_final(); }
  void check_final(FinalStep final) const override { impl_->check_final(final); }
  int min_steps() const override { return impl_->min_steps(); }
  torch::Tensor sample(const Denoiser& denoise, torch::Tensor x, const std::vector<double>& sigmas, NoiseSource& noise,
                       const StepCallback& callback = {}) const override {
    return impl_->sample(denoise, std::move(x), sigmas, noise, callback);
  }

 protected:
  TypedSampler(const Options& options, std::unique_ptr<Sampler> impl) : options_(options), impl_(std::move(impl)) {}

 private:
  Options options_;
  std::shared_ptr<const Sampler> impl_;
};

/// `euler`: Euler on the PF-ODE.
class Euler : public TypedSampler<EulerOptions> {
 public:
  explicit Euler(const EulerOptions& options = {});
};
/// `heun`: EDM Algorithm 2.
class Heun : public TypedSampler<HeunOptions> {
 public:
  explicit Heun(const HeunOptions& options = {});
};
/// `ddim`.
class Ddim : public TypedSampler<DdimOptions> {
 public:
  explicit Ddim(const DdimOptions& options = {});
};
/// `ddpm`: ancestral DDPM.
class Ddpm : public TypedSampler<DdpmOptions> {
 public:
  explicit Ddpm(const DdpmOptions& options = {});
};
/// `euler_maruyama`: the reverse-time SDE.
class EulerMaruyama : public TypedSampler<EulerMaruyamaOptions> {
 public:
  explicit EulerMaruyama(const EulerMaruyamaOptions& options = {});
};
/// `dpm_solver_2`: DPM-Solver-2 (singlestep).
class DpmSolver2 : public TypedSampler<DpmSolver2Options> {
 public:
  explicit DpmSolver2(const DpmSolver2Options& options = {});
};
/// `dpmpp_2m` (order 2) or `dpmpp_3m` (order 3): DPM-Solver++ multistep.
class DpmppMultistep : public TypedSampler<DpmppOptions> {
 public:
  explicit DpmppMultistep(const DpmppOptions& options = {});
};
/// `dpmpp_2m_sde`: SDE-DPM-Solver++(2M).
class Dpmpp2mSde : public TypedSampler<Dpmpp2mSdeOptions> {
 public:
  explicit Dpmpp2mSde(const Dpmpp2mSdeOptions& options = {});
};
/// `unipc`: UniPC predictor-corrector.
class UniPc : public TypedSampler<UnipcOptions> {
 public:
  explicit UniPc(const UnipcOptions& options = {});
};
/// `ipndm`: iPNDM, fixed Adams–Bashforth weights.
class Ipndm : public TypedSampler<IpndmOptions> {
 public:
  explicit Ipndm(const IpndmOptions& options = {});
};
/// `ipndm_v`: iPNDM-v, variable-step weights.
class IpndmV : public TypedSampler<IpndmVOptions> {
 public:
  explicit IpndmV(const IpndmVOptions& options = {});
};
/// `deis`: DEIS tAB.
class Deis : public TypedSampler<DeisOptions> {
 public:
  explicit Deis(const DeisOptions& options = {});
};

/// `analytic_ddpm`: Analytic-DDPM on the model's discrete chain.
class AnalyticDdpm : public TypedSampler<AnalyticDdpmOptions> {
 public:
  explicit AnalyticDdpm(const AnalyticDdpmOptions& options);
};
/// `analytic_ddim`: Analytic-DDIM.
class AnalyticDdim : public TypedSampler<AnalyticDdimOptions> {
 public:
  explicit AnalyticDdim(const AnalyticDdimOptions& options);
};
/// `sn_dpm`: SN-DPM (variance from the model's eps2 head).
class SnDpm : public TypedSampler<SnDpmOptions> {
 public:
  explicit SnDpm(const SnDpmOptions& options = {});
};
/// `npr_dpm`: NPR-DPM (variance from the model's epsc head).
class NprDpm : public TypedSampler<NprDpmOptions> {
 public:
  explicit NprDpm(const NprDpmOptions& options = {});
};

/// `amed`: AMED-Solver (Zhou et al. 2024), e.g. `Amed(AmedOptions().predictor("amed.pt"))`.
class Amed : public TypedSampler<AmedOptions> {
 public:
  explicit Amed(const AmedOptions& options);
};
/// `amed_plugin`: AMED-Plugin on `base`, e.g. `AmedPlugin(AmedPluginOptions().r(0.4).base(AmedBase::Ipndm))`.
class AmedPlugin : public TypedSampler<AmedPluginOptions> {
 public:
  explicit AmedPlugin(const AmedPluginOptions& options);
};

}  // namespace scoreflow
