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

/// "none", or the tables' shapes, dtypes and values hashed ("fnv1a64:…"): identifies them in resume
/// records and shard records whatever file they came from.
std::string tables_fingerprint(const ConditionTables& tables);

/// An npz's arrays as tensors (name → tensor), for check_condition_tables; `field` (e.g. "cond")
/// names the input in messages.
std::map<std::string, torch::Tensor> read_condition_arrays(const std::string& path, const char* field);

/// The model's declared unconditional value of every condition (metadata "uncond": zeros, or the
/// archive's stored uncond_<name>), [1, ...shape] each in the declared dtype on the model's device.
/// Throws Error naming `field` when the metadata declares none.
std::vector<torch::Tensor> unconditional_values(const Model& model, const char* field = "uncond");

/// What a conditional model is conditioned on when the dataset commands (Γ estimation, NLL, score
/// matching, the W2 bound) denoise dataset items (docs/design.md §3): one table per declared
/// condition with 1 row (every item) or one row per item used (item i uses row i). Empty for a
/// model without conditions, so that Conditioning stays empty as before.
struct ItemConditions {
  ConditionTables tables;
  std::string source;  ///< "cond", "uncond" or "metadata uncond (zeros|stored)"; "" when empty
  bool empty() const { return tables.empty(); }
  /// True when the tables are the unconditional input (the default).
  bool unconditional() const { return source != "cond"; }
  /// The Conditioning (guidance 1) of items [first, first + count) on `device`.
  Conditioning range(int64_t first, int64_t count, const torch::Device& device) const;
  /// The Conditioning of the items `items` ([n] int64 dataset indices) on `device`.
  Conditioning of(const torch::Tensor& items, const torch::Device& device) const;
  /// One line for a `note:`: what the model is conditioned on ("" when empty).
  std::string note(const Model& model) const;
  /// The tables' identity for resume records: "none", else source, shapes and a hash of the values.
  std::string fingerprint() const;
};

/// Resolves what `model`'s conditions are for `items` dataset items: the `cond` arrays when given
/// (1 row, or exactly `items` rows), else the unconditional input: the `uncond` arrays when given
/// (same row counts), else the metadata's uncond. Throws Error naming the field and the array (its
/// rows and the valid counts) before any network call; arrays given to a model without conditions,
/// or both cond and uncond, are refused.
ItemConditions item_conditions(const Model& model, int64_t items, const std::map<std::string, torch::Tensor>& cond = {},
                               const std::map<std::string, torch::Tensor>& uncond = {});

}  // namespace scoreflow
