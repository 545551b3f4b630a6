// Conditioning tables (metadata "conditions"): checks of user-supplied arrays, row selection.
#include "scoreflow/conditioning.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <set>
#include <sstream>

#include "io/npy_detail.h"
#include "models/sizes_text.h"
#include "scoreflow/error.h"
#include "scoreflow/fingerprint.h"
#include "scoreflow/npy.h"

namespace scoreflow {
namespace {

bool is_integer(torch::ScalarType t) {
  return t == torch::kByte || t == torch::kChar || t == torch::kShort || t == torch::kInt || t == torch::kLong;
}

}  // namespace

std::string table_shape_text(const ConditionSpec& spec) {
  std::string out = "[P";
  for (int64_t d : spec.shape) out += ", " + std::to_string(d);
  return out + "]";
}

ConditionTables check_condition_tables(const std::vector<ConditionSpec>& specs,
                                       const std::map<std::string, torch::Tensor>& arrays, const char* field) {
  std::set<std::string> declared;
  std::vector<std::string> names;
  for (const ConditionSpec& s : specs) declared.insert(s.name), names.push_back(s.name);
  if (specs.empty())
    fail(Field{field}, " is given but the model declares no conditioning inputs (metadata 'conditions')");
  for (const auto& [name, array] : arrays)
    if (!declared.count(name))
      fail(Field{field}, " array '", name, "' is not a condition of this model; its conditions are ", join(names));
  ConditionTables out;
  for (const ConditionSpec& spec : specs) {
    auto it = arrays.find(spec.name);
    const std::string want = table_shape_text(spec);
    if (it == arrays.end())
      fail(Field{field}, " has no array '", spec.name, "'; expected shape ", want, " (",
           io::numpy_dtype_name(spec.dtype), ")");
    const torch::Tensor& a = it->second;
    const bool shape_ok =
        a.dim() == static_cast<int64_t>(spec.shape.size()) + 1 && a.sizes().slice(1) == c10::IntArrayRef(spec.shape);
    if (!shape_ok)
      fail(Field{field}, " array '", spec.name, "' has shape ", sizes_text(a.sizes()), ", expected ", want);
    if (a.size(0) < 1)
      fail(Field{field}, " array '", spec.name, "' has no rows; expected shape ", want, " with P >= 1");
    const torch::ScalarType t = a.scalar_type();
    torch::Tensor v;
    if (spec.dtype == torch::kFloat32) {
      if (!a.is_floating_point())
        fail(Field{field}, " array '", spec.name, "' has dtype ", io::numpy_dtype_name(t),
             "; the input takes float32 (shape ", want, "; float16/float64 are converted)");
      v = a.to(torch::kFloat32);
      if (!torch::isfinite(a.to(torch::kFloat64)).all().item<bool>() || !torch::isfinite(v).all().item<bool>())
        fail(Field{field}, " array '", spec.name,
             "' has NaN or Inf values (or values beyond float32); expected finite ", want);
    } else {
      if (!is_integer(t))
        fail(Field{field}, " array '", spec.name, "' has dtype ", io::numpy_dtype_name(t), "; the input takes ",
             io::numpy_dtype_name(spec.dtype), " (shape ", want, "; integer arrays only)");
      v = a.to(torch::kLong);
      if (spec.dtype == torch::kInt && v.numel() > 0 &&
          (v.min().item<int64_t>() < INT32_MIN || v.max().item<int64_t>() > INT32_MAX))
        fail(Field{field}, " array '", spec.name, "' has values outside the int32 range of the input (shape ", want,
             ")");
      v = v.to(spec.dtype);
    }
    out.values.push_back(v.contiguous());
  }
  for (const torch::Tensor& v : out.values) out.rows = std::max(out.rows, v.size(0));
  for (size_t k = 0; k < specs.size(); ++k)
    if (out.values[k].size(0) != 1 && out.values[k].size(0) != out.rows)
      fail(Field{field}, " array '", specs[k].name, "' has ", out.values[k].size(0), " rows but another array has ",
           out.rows, "; every array needs 1 row (shared) or the same P rows, shape ", table_shape_text(specs[k]));
  return out;
}

std::vector<int64_t> condition_rows(int64_t n, int64_t rows, const std::vector<int64_t>& explicit_rows,
                                    const char* field) {
  if (rows < 1) fail("condition_rows: the tables have no rows");
  std::vector<int64_t> out(static_cast<size_t>(n));
  if (explicit_rows.empty()) {
    for (int64_t i = 0; i < n; ++i) out[i] = i % rows;
    return out;
  }
  if (static_cast<int64_t>(explicit_rows.size()) != n)
    fail(Field{field}, " gives ", explicit_rows.size(), " rows for ", n, " samples; give one row per seed");
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = explicit_rows[i];
    if (r < 0 || r >= rows)
      fail(Field{field}, " entry ", i, " is row ", r, " but the conditioning arrays have ", rows, " row",
           rows == 1 ? "" : "s", " (valid: 0..", rows - 1, ")");
    out[i] = r;
  }
  return out;
}

void check_uncond_rows(const ConditionTables& cond, const ConditionTables& uncond) {
  if (uncond.empty() || cond.empty()) return;
  if (uncond.rows != 1 && uncond.rows != cond.rows)
    fail(Field{"uncond"}, " arrays have ", uncond.rows, " rows; expected 1 (shared) or ", cond.rows,
         " (one per conditioning row)");
}

std::vector<torch::Tensor> ConditionTables::gather(const std::vector<int64_t>& rows, int64_t begin, int64_t count,
                                                   const torch::Device& device) const {
  std::vector<torch::Tensor> out;
  if (values.empty()) return out;
  const torch::Tensor index =
      torch::tensor(std::vector<int64_t>(rows.begin() + begin, rows.begin() + begin + count), torch::kLong);
  for (const torch::Tensor& v : values) {
    torch::Tensor g;
    if (v.size(0) == 1) {
      std::vector<int64_t> size(v.sizes().begin(), v.sizes().end());
      size[0] = count;
      g = v.expand(size).contiguous();
    } else {
      g = v.index_select(0, index);
    }
    out.push_back(g.to(device));
  }
  return out;
}

std::map<std::string, torch::Tensor> read_condition_arrays(const std::string& path, const char* field) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, array] : io::read_npz(path)) {
    try {
      out[name] = io::to_tensor(array);
    } catch (const Error& e) {
      fail(Field{field}, " array '", name, "' cannot be read: ", e.what());
    }
  }
  return out;
}

std::vector<torch::Tensor> unconditional_values(const Model& model, const char* field) {
  const ModelMetadata& m = model.metadata();
  std::vector<std::string> names;
  for (const ConditionSpec& s : m.conditions) names.push_back(s.name);
  if (m.uncond == UncondSource::None)
    fail("model ", model.name(), " declares no unconditional value for its conditions (", join(names),
         "; metadata 'uncond' is absent): give ", Field{field});
  std::vector<torch::Tensor> out;
  for (const ConditionSpec& s : m.conditions) {
    std::vector<int64_t> shape{1};
    shape.insert(shape.end(), s.shape.begin(), s.shape.end());
    out.push_back(m.uncond == UncondSource::Zeros
                      ? torch::zeros(shape, torch::TensorOptions().dtype(s.dtype).device(model.device()))
                      : model.stored_uncond(s.name).reshape(shape).to(model.device(), s.dtype));
  }
  return out;
}

ItemConditions item_conditions(const Model& model, int64_t items, const std::map<std::string, torch::Tensor>& cond,
                               const std::map<std::string, torch::Tensor>& uncond) {
  const ModelMetadata& m = model.metadata();
  ItemConditions out;
  if (m.conditions.empty()) {
    if (!cond.empty()) fail(Field{"cond"}, " is given but model ", model.name(), " declares no conditioning inputs");
    if (!uncond.empty())
      fail(Field{"uncond"}, " is given but model ", model.name(), " declares no conditioning inputs");
    return out;
  }
  if (!cond.empty() && !uncond.empty())
    fail(Field{"uncond"}, " is given with ", Field{"cond"},
         ": the data commands denoise with one of them (no guidance), give only one");
  const char* field = !cond.empty() ? "cond" : "uncond";
  if (!cond.empty() || !uncond.empty()) {
    out.tables = check_condition_tables(m.conditions, cond.empty() ? uncond : cond, field);
    out.source = field;
  } else {
    for (torch::Tensor& v : unconditional_values(model)) out.tables.values.push_back(v.to(torch::kCPU).contiguous());
    out.tables.rows = 1;
    out.source = m.uncond == UncondSource::Zeros ? "metadata uncond (zeros)" : "metadata uncond (stored)";
  }
  // Item i uses row i: a table has one row for every item, or one shared row.
  for (size_t k = 0; k < m.conditions.size(); ++k) {
    const int64_t rows = out.tables.values[k].size(0);
    if (rows != 1 && rows != items)
      fail(Field{field}, " array '", m.conditions[k].name, "' has ", rows,
           " rows; the data commands take 1 (shared by ", "every item) or ", items,
           " (one per dataset item used, item i uses row i), shape ", table_shape_text(m.conditions[k]));
  }
  return out;
}

Conditioning ItemConditions::range(int64_t first, int64_t count, const torch::Device& device) const {
  Conditioning c;
  for (const torch::Tensor& v : tables.values)
    c.conds.push_back((v.size(0) == 1 ? v : v.narrow(0, first, count)).to(device));
  return c;
}

Conditioning ItemConditions::of(const torch::Tensor& items, const torch::Device& device) const {
  Conditioning c;
  for (const torch::Tensor& v : tables.values)
    c.conds.push_back((v.size(0) == 1 ? v : v.index_select(0, items.to(torch::kCPU, torch::kLong))).to(device));
  return c;
}

std::string ItemConditions::note(const Model& model) const {
  if (empty()) return "";
  if (source == "cond")
    return "model " + model.name() + " is conditioned on the cond arrays (" +
           (tables.rows == 1 ? std::string("one row shared by every item") : "item i uses row i") + ")";
  return "model " + model.name() + " is conditional; the data are denoised with its unconditional input (" +
         (source == "uncond" ? std::string("the uncond arrays") : source) + ")";
}

std::string tables_fingerprint(const ConditionTables& tables) {
  if (tables.empty()) return "none";
  std::string bytes;
  for (const torch::Tensor& v : tables.values) {
    const torch::Tensor c = v.to(torch::kCPU).contiguous();
    std::ostringstream os;
    os << c.sizes() << c10::toString(c.scalar_type()) << ';';
    bytes += os.str();
    bytes.append(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
  }
  return io::hash_text(bytes);
}

std::string ItemConditions::fingerprint() const {
  if (empty()) return "none";
  return (unconditional() ? "uncond " : "cond ") + tables_fingerprint(tables);
}

}  // namespace scoreflow
