#pragma once
/// The factories each samplers/<name>.cpp defines next to its "k=v" one (registry.cpp): the sampler
/// built from its typed options. Private to samplers/; the public classes are in scoreflow/samplers.h.
#include <memory>

#include "scoreflow/sampler.h"
#include "scoreflow/sampler_options.h"

namespace scoreflow::detail {

std::unique_ptr<Sampler> make_euler(const EulerOptions& options);
std::unique_ptr<Sampler> make_heun(const HeunOptions& options);
std::unique_ptr<Sampler> make_ddim(const DdimOptions& options);
std::unique_ptr<Sampler> make_ddpm(const DdpmOptions& options);
std::unique_ptr<Sampler> make_euler_maruyama(const EulerMaruyamaOptions& options);
std::unique_ptr<Sampler> make_dpm_solver_2(const DpmSolver2Options& options);
std::unique_ptr<Sampler> make_dpmpp(const DpmppOptions& options);
std::unique_ptr<Sampler> make_dpmpp_2m_sde(const Dpmpp2mSdeOptions& options);
std::unique_ptr<Sampler> make_unipc(const UnipcOptions& options);
std::unique_ptr<Sampler> make_ipndm(const IpndmOptions& options);
std::unique_ptr<Sampler> make_ipndm_v(const IpndmVOptions& options);
std::unique_ptr<Sampler> make_deis(const DeisOptions& options);
std::unique_ptr<Sampler> make_analytic_ddpm(const AnalyticDdpmOptions& options);
std::unique_ptr<Sampler> make_analytic_ddim(const AnalyticDdimOptions& options);
std::unique_ptr<Sampler> make_sn_dpm(const SnDpmOptions& options);
std::unique_ptr<Sampler> make_npr_dpm(const NprDpmOptions& options);
std::unique_ptr<Sampler> make_amed(const AmedOptions& options);
std::unique_ptr<Sampler> make_amed_plugin(const AmedPluginOptions& options);

}  // namespace scoreflow::detail
