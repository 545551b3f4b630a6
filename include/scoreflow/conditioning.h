#pragma once
/// Conditioning inputs for a run (metadata "conditions", docs/design.md §3): the tables a user
/// supplies (an npz with one array per condition name), checked before any network call, and the
/// row of them that each sample uses.
#include <torch/types.h>

#include <map>
#include <string>
#include <vector>

#include "scoreflow/model.h"

namespace scoreflow {

/// One table per declared condition, in declaration order: [R_k, ...shape_k] in the declared
/// dtype on the CPU, with R_k = 1 (shared by every sample) or R_k = rows.
struct ConditionTables {
  std::vector<torch::Tensor> values;
  int64_t rows = 0;  ///< P: the largest table's row count (0 when there are no tables)
  bool empty() const { return values.empty(); }
  /// The rows `rows[begin, begin + count)` of every table (a 1-row table gives its row to every
  /// sample) on `device`: [count, ...shape_k] each.
  std::vector<torch::Tensor> gather(const std::vector<int64_t>& rows, int64_t begin, int64_t count,
                                    const torch::Device& device) const;
};

/// Checks `arrays` (name → array, e.g. read from an npz) against `specs` and returns them as tables
/// in declaration order. `field` (e.g. "cond", "uncond") names the input in messages. Refuses, each
/// with one message naming the array and the expected shape: a missing or an extra name, a wrong
/// rank or shape, row counts other than 1 and P, an empty table, a dtype the input cannot take
/// (a float input takes float16/32/64; an integer input takes integer arrays whose values fit),
/// NaN or Inf.
ConditionTables check_condition_tables(const std::vector<ConditionSpec>& specs,
                                       const std::map<std::string, torch::Tensor>& arrays, const char* field);

/// The table row of each of `n` samples: `explicit_rows` (one per sample) when given, else sample
/// index i mod `rows`. Throws Error naming `field` (e.g. "cond_rows") when an explicit row is
/// outside [0, rows) or the list does not have one entry per sample.
std::vector<int64_t> condition_rows(int64_t n, int64_t rows, const std::vector<int64_t>& explicit_rows,
                                    const char* field = "cond_rows");

/// Unconditional tables for guidance must have 1 row or as many as the conditional ones (a
/// negative prompt per prompt); throws Error naming field "uncond" otherwise.
void check_uncond_rows(const ConditionTables& cond, const ConditionTables& uncond);

/// "[P, 77, 768]"-style text for a condition's table shape.
std::string table_shape_text(const ConditionSpec& spec);

}  // namespace scoreflow
