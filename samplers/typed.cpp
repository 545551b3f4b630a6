#include "samplers/typed.h"

#include "scoreflow/samplers.h"

namespace scoreflow {

Euler::Euler(const EulerOptions& options) : TypedSampler(options, detail::make_euler(options)) {}
Heun::Heun(const HeunOptions& options) : TypedSampler(options, detail::make_heun(options)) {}
Ddim::Ddim(const DdimOptions& options) : TypedSampler(options, detail::make_ddim(options)) {}
Ddpm::Ddpm(const DdpmOptions& options) : TypedSampler(options, detail::make_ddpm(options)) {}
EulerMaruyama::EulerMaruyama(const EulerMaruyamaOptions& options)
    : TypedSampler(options, detail::make_euler_maruyama(options)) {}
DpmSolver2::DpmSolver2(const DpmSolver2Options& options) : TypedSampler(options, detail::make_dpm_solver_2(options)) {}
DpmppMultistep::DpmppMultistep(const DpmppOptions& options) : TypedSampler(options, detail::make_dpmpp(options)) {}
Dpmpp2mSde::Dpmpp2mSde(const Dpmpp2mSdeOptions& options) : TypedSampler(options, detail::make_dpmpp_2m_sde(options)) {}
UniPc::UniPc(const UnipcOptions& options) : TypedSampler(options, detail::make_unipc(options)) {}
Ipndm::Ipndm(const IpndmOptions& options) : TypedSampler(options, detail::make_ipndm(options)) {}
IpndmV::IpndmV(const IpndmVOptions& options) : TypedSampler(options, detail::make_ipndm_v(options)) {}
Deis::Deis(const DeisOptions& options) : TypedSampler(options, detail::make_deis(options)) {}
AnalyticDdpm::AnalyticDdpm(const AnalyticDdpmOptions& options)
    : TypedSampler(options, detail::make_analytic_ddpm(options)) {}
AnalyticDdim::AnalyticDdim(const AnalyticDdimOptions& options)
    : TypedSampler(options, detail::make_analytic_ddim(options)) {}
SnDpm::SnDpm(const SnDpmOptions& options) : TypedSampler(options, detail::make_sn_dpm(options)) {}
NprDpm::NprDpm(const NprDpmOptions& options) : TypedSampler(options, detail::make_npr_dpm(options)) {}
Amed::Amed(const AmedOptions& options) : TypedSampler(options, detail::make_amed(options)) {}
AmedPlugin::AmedPlugin(const AmedPluginOptions& options) : TypedSampler(options, detail::make_amed_plugin(options)) {}

}  // namespace scoreflow
