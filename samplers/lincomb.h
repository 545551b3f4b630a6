#pragma once
/// Linear combinations of tensors with host (double) coefficients, for the samplers' update
/// formulas. A step written term by term (x·a − D·b, then a difference, then a scaled difference,
/// …) launches one small kernel per operation; written as Σ c_k·t_k with the c_k worked out in
/// double, it costs one kernel per term. On a GPU at the batch sizes that matter those kernels are
/// the whole of a sampler's overhead (issue #7). Private to samplers/.
#include <torch/torch.h>

#include <utility>
#include <vector>

namespace scoreflow::detail {

/// One term c·t of a combination.
struct Term {
  double c;
  torch::Tensor t;
};

/// Σ c_k·t_k, skipping zero coefficients: a mul for the first term (none when its coefficient is
/// 1 and a second term follows: that pair is one add) and an in-place add with alpha for each
/// further term. At least one term must be non-zero (else the result is 0·t₀).
inline torch::Tensor lincomb(const std::vector<Term>& terms) {
  std::vector<const Term*> live;
  for (const Term& term : terms)
    if (term.c != 0) live.push_back(&term);
  if (live.empty()) return terms.front().t.mul(0.0);
  torch::Tensor out;
  size_t k = 1;
  if (live.size() > 1 && live[0]->c == 1) {
    out = at::add(live[0]->t, live[1]->t, live[1]->c);
    k = 2;
  } else {
    out = live[0]->t.mul(live[0]->c);
  }
  for (; k < live.size(); ++k) out.add_(live[k]->t, live[k]->c);
  return out;
}

}  // namespace scoreflow::detail
