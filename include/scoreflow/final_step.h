#pragma once
/// What a sampler run returns after the last grid point (issue 15; docs/samplers.md "Final step").
#include <string>

namespace scoreflow {

/// zero: the grid ends at σ = 0 and each sampler takes its own step into 0 (k-diffusion, EDM with
/// its final Euler step). none: the grid ends at σ_min > 0 and x there is returned (EDM's and
/// diff-sampler's denoise_to_zero=False; the AMED, GITS and DPM-Solver-v3 papers count NFE so).
/// denoise: as none, then D(x, σ_min), one more network call.
enum class FinalStep { Zero, None, Denoise };

/// "zero" | "none" | "denoise"; throws Error naming the field 'final' and the valid values.
FinalStep parse_final_step(const std::string& text);
std::string final_step_name(FinalStep final);

}  // namespace scoreflow
