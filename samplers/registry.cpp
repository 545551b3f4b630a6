#include "scoreflow/registry.h"

#include "scoreflow/error.h"

namespace scoreflow {

// One line per sampler: name, summary. Each samplers/<name>.cpp defines make_<name>() (amed.cpp defines
// both AMED factories: the plugin is the same loop with a base solver).
#define SCOREFLOW_SAMPLERS(X)                                                                               \
  X(euler, "Euler on the PF-ODE (k-diffusion sample_euler), 1 NFE/step")                                    \
  X(heun, "EDM Algorithm 2 (Heun 2nd order, optional churn S_churn/S_min/S_max/S_noise), 2N-1 NFE")         \
  X(ddim, "DDIM with eta (eta=0 is Euler in sigma-space; eta>0 ancestral), 1 NFE/step")                     \
  X(ddpm, "DDPM ancestral sampling (variance=beta_tilde|beta), 1 NFE/step")                                 \
  X(euler_maruyama, "Euler-Maruyama on the reverse-time SDE, last step denoises, 1 NFE/step")               \
  X(dpm_solver_2, "DPM-Solver-2 (midpoint in lambda=-log sigma, r=0.5), 2N-1 NFE")                          \
  X(dpmpp_2m, "DPM-Solver++(2M) multistep, data prediction, lower_order_final, N NFE")                      \
  X(dpmpp_3m, "DPM-Solver++(3M) multistep, d2=official|taylor, lower_order_final, N NFE")                   \
  X(dpmpp_2m_sde, "SDE-DPM-Solver++(2M) with eta, solver_type=midpoint|heun, N NFE")                        \
  X(unipc, "UniPC predictor-corrector (variant=bh1|bh2, order=1..3), corrector free, N NFE")                \
  X(ipndm, "iPNDM: fixed Adams-Bashforth on d, max_order=1..4 with warm-up, N NFE")                         \
  X(ipndm_v, "iPNDM-v: variable-step AB on d, weights=deis (authors' code)|exact, max_order=1..4, N NFE")   \
  X(deis, "DEIS tAB: eps extrapolated in VP time t (variant=tab|rhoab), order=1..3, warm-up, N NFE")        \
  X(amed, "AMED-Solver (predictor=amed.pt | table=t.json | r,c,a; afs), 2 NFE per interval, 2(N-1)-afs")    \
  X(amed_plugin, "AMED-Plugin on base=euler|ipndm|dpmpp_2m (predictor=|table=|r,c,a; afs), 2(N-1)-afs NFE") \
  X(analytic_ddpm, "Analytic-DDPM (Bao et al. 2022): optimal variance from gamma=FILE, 1 NFE/step")         \
  X(analytic_ddim, "Analytic-DDIM: eta (default 0), optimal variance from gamma=FILE, 1 NFE/step")          \
  X(sn_dpm, "SN-DPM (Bao et al. 2022b): per-element variance from an eps2 head, 1 NFE/step")                \
  X(npr_dpm, "NPR-DPM: per-element variance from an epsc residual head, 1 NFE/step")

#define SCOREFLOW_DECLARE(name, summary) std::unique_ptr<Sampler> make_##name(const KeyValueArgs&);
SCOREFLOW_SAMPLERS(SCOREFLOW_DECLARE)
#undef SCOREFLOW_DECLARE

const std::vector<SamplerInfo>& sampler_table() {
#define SCOREFLOW_ENTRY(name, summary) {#name, summary, &make_##name},
  static const std::vector<SamplerInfo> table = {SCOREFLOW_SAMPLERS(SCOREFLOW_ENTRY)};
#undef SCOREFLOW_ENTRY
  return table;
}

std::unique_ptr<Sampler> make_sampler(const std::string& name, const std::string& args_text) {
  for (const SamplerInfo& info : sampler_table()) {
    if (info.name != name) continue;
    KeyValueArgs args(args_text, "sampler arg");
    std::unique_ptr<Sampler> sampler = info.make(args);
    args.finish("sampler " + name);
    return sampler;
  }
  std::vector<std::string> names;
  for (const SamplerInfo& info : sampler_table()) names.push_back(info.name);
  fail("unknown sampler '", name, "'; valid: ", join(names));
}

}  // namespace scoreflow
