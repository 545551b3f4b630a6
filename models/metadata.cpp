// scoreflow.json: parsing, merging with --meta-file / --meta overrides, validation.
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "scoreflow/data.h"
#include "scoreflow/error.h"
#include "scoreflow/model.h"
#include "scoreflow/model_data.h"

namespace scoreflow {
namespace {

using json = nlohmann::json;

std::string type_of(const json& j) { return j.type_name(); }

double number(const json& j, const std::string& field) {
  if (!j.is_number()) fail("metadata field '", field, "' must be a number, got ", type_of(j), " ", j.dump());
  return j.get<double>();
}

std::string string_field(const json& j, const std::string& field) {
  if (!j.is_string()) fail("metadata field '", field, "' must be a string, got ", type_of(j), " ", j.dump());
  return j.get<std::string>();
}

double get_number(const json& obj, const std::string& key, double fallback, const std::string& prefix) {
  return obj.contains(key) ? number(obj.at(key), prefix + key) : fallback;
}

NoiseSchedule parse_schedule(const json& j) {
  if (!j.is_object()) fail("metadata field 'schedule' must be an object, got ", type_of(j), " ", j.dump());
  if (!j.contains("type"))
    fail("metadata field 'schedule.type' is missing; valid: vp_discrete, vp_linear, ve, edm, flow");
  std::string type = string_field(j.at("type"), "schedule.type");
  std::set<std::string> allowed;
  NoiseSchedule out = NoiseSchedule::edm();
  const std::string p = "schedule.";
  if (type == "vp_discrete") {
    allowed = {"type", "betas", "beta_start", "beta_end", "num_train_steps", "rescale_zero_terminal_snr"};
    bool rescale = false;
    if (j.contains("rescale_zero_terminal_snr")) {
      if (!j.at("rescale_zero_terminal_snr").is_boolean())
        fail("metadata field 'schedule.rescale_zero_terminal_snr' must be a boolean, got ",
             j.at("rescale_zero_terminal_snr").dump());
      rescale = j.at("rescale_zero_terminal_snr").get<bool>();
    }
    json betas = j.value("betas", json("linear"));
    if (betas.is_array()) {
      std::vector<double> values;
      for (size_t i = 0; i < betas.size(); ++i)
        values.push_back(number(betas[i], p + "betas[" + std::to_string(i) + "]"));
      out = NoiseSchedule::vp_discrete(values, rescale);
    } else {
      std::string name = string_field(betas, p + "betas");
      if (name != "linear" && name != "scaled_linear" && name != "cosine")
        fail("metadata field 'schedule.betas' has unknown value '", name,
             "'; valid: linear, scaled_linear, cosine, or a list");
      bool scaled = name == "scaled_linear";
      double n = get_number(j, "num_train_steps", 1000, p);
      if (n != static_cast<int>(n)) fail("metadata field 'schedule.num_train_steps' must be an integer, got ", n);
      out =
          NoiseSchedule::vp_discrete(name, get_number(j, "beta_start", scaled ? 0.00085 : 1e-4, p),
                                     get_number(j, "beta_end", scaled ? 0.012 : 0.02, p), static_cast<int>(n), rescale);
    }
  } else if (type == "vp_linear") {
    allowed = {"type", "beta_min", "beta_max", "t_eps"};
    out = NoiseSchedule::vp_linear(get_number(j, "beta_min", 0.1, p), get_number(j, "beta_max", 20, p),
                                   get_number(j, "t_eps", 1e-3, p));
  } else if (type == "ve") {
    allowed = {"type", "sigma_min", "sigma_max"};
    out = NoiseSchedule::ve(get_number(j, "sigma_min", 0.01, p), get_number(j, "sigma_max", 50, p));
  } else if (type == "edm") {
    allowed = {"type", "sigma_min", "sigma_max", "sigma_data"};
    out = NoiseSchedule::edm(get_number(j, "sigma_min", 0.002, p), get_number(j, "sigma_max", 80, p),
                             get_number(j, "sigma_data", 0.5, p));
  } else if (type == "flow") {
    allowed = {"type", "t_min", "t_max"};
    out = NoiseSchedule::flow(get_number(j, "t_min", 1e-3, p), get_number(j, "t_max", 1 - 1e-3, p));
  } else {
    fail("metadata field 'schedule.type' has unknown value '", type, "'; valid: vp_discrete, vp_linear, ve, edm, flow");
  }
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!allowed.count(it.key()))
      fail("metadata field 'schedule.", it.key(), "' is not a ", type,
           " parameter; valid: ", join(std::vector<std::string>(allowed.begin(), allowed.end())));
  return out;
}

json parse_document(const std::string& text, const std::string& what) {
  try {
    json j = json::parse(text);
    if (!j.is_object()) fail(what, " must be a JSON object, got ", type_of(j));
    return j;
  } catch (const json::exception& e) {
    fail(what, " is not valid JSON: ", e.what());
  }
}

void apply_override(json& doc, const std::string& item) {
  size_t eq = item.find('=');
  if (eq == std::string::npos || eq == 0) fail("malformed ", Field{"meta"}, " '", item, "' (expected key=value)");
  std::string key = item.substr(0, eq), text = item.substr(eq + 1);
  json value;
  try {
    value = json::parse(text);
  } catch (const json::exception&) {
    value = text;  // bare word: a string
  }
  json* node = &doc;
  size_t start = 0;
  for (size_t dot; (dot = key.find('.', start)) != std::string::npos; start = dot + 1) {
    json& child = (*node)[key.substr(start, dot - start)];
    if (!child.is_object()) child = json::object();
    node = &child;
  }
  (*node)[key.substr(start)] = value;
}

int64_t pad_size(const json& j, const std::string& field) {
  if (!j.is_number_integer() || j.get<int64_t>() < 0 || j.get<int64_t>() > 4096)
    fail("metadata field '", field, "' must be an integer in [0, 4096], got ", j.dump());
  return j.get<int64_t>();
}

/// "data_prep": {"pad": N | [top, bottom, left, right], "pad_value": V} or {"resize": "center_crop"}.
io::DataPrep parse_data_prep(const json& j, const ModelMetadata& m) {
  const char* forms = "{\"pad\": N or [top, bottom, left, right], \"pad_value\": V} or {\"resize\": \"center_crop\"}";
  if (!j.is_object()) fail("metadata field 'data_prep' must be an object ", forms, ", got ", j.dump());
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.key() != "pad" && it.key() != "pad_value" && it.key() != "resize")
      fail("metadata field 'data_prep.", it.key(), "' is unknown; valid: pad, pad_value, resize");
  if (!m.image_shaped())
    fail("metadata field 'data_prep' needs an image-shaped model [C, H, W]; the shape is ", json(m.shape).dump());
  io::DataPrep p;
  if (j.contains("resize")) {
    if (string_field(j.at("resize"), "data_prep.resize") != "center_crop")
      fail("metadata field 'data_prep.resize' has unknown value ", j.at("resize").dump(), "; valid: center_crop");
    p.resize = true;
  }
  if (j.contains("pad")) {
    const json& pad = j.at("pad");
    if (pad.is_array()) {
      if (pad.size() != 4)
        fail("metadata field 'data_prep.pad' must be N or [top, bottom, left, right], got ", pad.dump());
      p.pad_top = pad_size(pad[0], "data_prep.pad[0]"), p.pad_bottom = pad_size(pad[1], "data_prep.pad[1]");
      p.pad_left = pad_size(pad[2], "data_prep.pad[2]"), p.pad_right = pad_size(pad[3], "data_prep.pad[3]");
    } else {
      p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = pad_size(pad, "data_prep.pad");
    }
    if (p.pad_top + p.pad_bottom >= m.shape[1] || p.pad_left + p.pad_right >= m.shape[2])
      fail("metadata field 'data_prep.pad' ", pad.dump(), " leaves no pixels of the ", m.shape[1], "x", m.shape[2],
           " samples");
  }
  if (p.resize && j.contains("pad")) fail("metadata field 'data_prep' gives pad and resize; give one");
  if (j.contains("pad_value") && !j.contains("pad"))
    fail("metadata field 'data_prep.pad_value' is given without 'data_prep.pad'");
  p.pad_value = j.contains("pad_value") ? number(j.at("pad_value"), "data_prep.pad_value") : m.data_min;
  if (p.padded() && !(p.pad_value >= m.data_min && p.pad_value <= m.data_max))
    fail("metadata field 'data_prep.pad_value' ", p.pad_value, " is outside data_range [", m.data_min, ", ", m.data_max,
         "]");
  if (p.empty()) fail("metadata field 'data_prep' must be ", forms, ", got ", j.dump());
  return p;
}

std::vector<int64_t> dims(const json& j, const std::string& field, size_t min_rank, size_t max_rank) {
  const auto bad = [&] {
    fail("metadata field '", field, "' must be a list of ", min_rank, " to ", max_rank, " positive integers, got ",
         j.dump());
  };
  if (!j.is_array() || j.size() < min_rank || j.size() > max_rank) bad();
  std::vector<int64_t> out;
  int64_t values = 1;
  for (const json& d : j) {
    if (!d.is_number_integer() || d.get<int64_t>() < 1 || d.get<int64_t>() > 65536) bad();
    out.push_back(d.get<int64_t>());
    if ((values *= out.back()) > (int64_t(1) << 26))
      fail("metadata field '", field, "' ", j.dump(), " has more than 2^26 values; corrupt metadata?");
  }
  return out;
}

/// "conditions": [{"name": ..., "shape": [...], "dtype": "float32" | "int64" | "int32"}, ...].
std::vector<ConditionSpec> parse_conditions(const json& j) {
  if (!j.is_array())
    fail("metadata field 'conditions' must be a list of {\"name\", \"shape\"[, \"dtype\"]} objects, got ", j.dump());
  std::vector<ConditionSpec> out;
  std::set<std::string> names;
  for (size_t i = 0; i < j.size(); ++i) {
    const std::string f = "conditions[" + std::to_string(i) + "]";
    const json& c = j[i];
    if (!c.is_object())
      fail("metadata field '", f, "' must be an object {\"name\", \"shape\"[, \"dtype\"]}, got ", c.dump());
    for (auto it = c.begin(); it != c.end(); ++it)
      if (it.key() != "name" && it.key() != "shape" && it.key() != "dtype")
        fail("metadata field '", f, ".", it.key(), "' is unknown; valid: name, shape, dtype");
    if (!c.contains("name") || !c.contains("shape"))
      fail("metadata field '", f, "' needs 'name' and 'shape', got ", c.dump());
    ConditionSpec spec;
    spec.name = string_field(c.at("name"), f + ".name");
    if (spec.name.empty() || spec.name.find_first_of("/\\ \t\n") != std::string::npos)
      fail("metadata field '", f, ".name' must be a non-empty name without spaces or slashes, got ",
           c.at("name").dump());
    if (!names.insert(spec.name).second)
      fail("metadata field '", f, ".name' repeats the condition name '", spec.name, "'");
    spec.shape = dims(c.at("shape"), f + ".shape", 0, 4);
    if (c.contains("dtype")) {
      const std::string d = string_field(c.at("dtype"), f + ".dtype");
      if (d == "float32")
        spec.dtype = torch::kFloat32;
      else if (d == "int64")
        spec.dtype = torch::kLong;
      else if (d == "int32")
        spec.dtype = torch::kInt;
      else
        fail("metadata field '", f, ".dtype' has unknown value '", d, "'; valid: float32, int64, int32");
    }
    out.push_back(std::move(spec));
  }
  return out;
}

DecoderSpec parse_decoder(const json& j, const std::string& f) {
  if (!j.is_object())
    fail("metadata field '", f,
         "' must be an object {\"method\", \"scale\", \"shift\", \"image_shape\", \"image_range\"}, got ", j.dump());
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.key() != "method" && it.key() != "scale" && it.key() != "shift" && it.key() != "image_shape" &&
        it.key() != "image_range")
      fail("metadata field '", f, ".", it.key(), "' is unknown; valid: method, scale, shift, image_shape, image_range");
  if (!j.contains("method") || !j.contains("image_shape"))
    fail("metadata field '", f, "' needs 'method' and 'image_shape', got ", j.dump());
  DecoderSpec d;
  d.method = string_field(j.at("method"), f + ".method");
  if (d.method.empty()) fail("metadata field '", f, ".method' must name a TorchScript method, got \"\"");
  d.scale = get_number(j, "scale", 1.0, f + ".");
  if (!(std::isfinite(d.scale) && d.scale != 0))
    fail("metadata field '", f, ".scale' must be finite and non-zero, got ", d.scale);
  d.shift = get_number(j, "shift", 0.0, f + ".");
  if (!std::isfinite(d.shift)) fail("metadata field '", f, ".shift' must be finite, got ", d.shift);
  d.image_shape = dims(j.at("image_shape"), f + ".image_shape", 1, 4);
  if (j.contains("image_range")) {
    const json& r = j.at("image_range");
    if (!r.is_array() || r.size() != 2) fail("metadata field '", f, ".image_range' must be [lo, hi], got ", r.dump());
    d.image_min = number(r[0], f + ".image_range[0]");
    d.image_max = number(r[1], f + ".image_range[1]");
    if (!(d.image_max > d.image_min)) fail("metadata field '", f, ".image_range' must have lo < hi, got ", r.dump());
  }
  return d;
}

}  // namespace

DecoderSpec decoder_from_json(const std::string& text, const std::string& field) {
  return parse_decoder(parse_document(text, field), field);
}

io::DatasetOptions dataset_options(const ModelMetadata& meta) {
  io::DatasetOptions o;
  o.shape = meta.shape;
  o.lo = meta.data_min;
  o.hi = meta.data_max;
  if (!meta.json.empty()) {
    const json doc = json::parse(meta.json);
    if (doc.contains("data_prep") && !doc.at("data_prep").is_null())
      o.prep = parse_data_prep(doc.at("data_prep"), meta);
  }
  return o;
}

Prediction parse_prediction(const std::string& name) {
  if (name == "eps") return Prediction::Eps;
  if (name == "x0") return Prediction::X0;
  if (name == "v") return Prediction::V;
  if (name == "score") return Prediction::Score;
  if (name == "flow") return Prediction::Flow;
  fail("unknown prediction '", name, "'; valid: eps, x0, v, score, flow");
}

std::string prediction_name(Prediction p) {
  const char* names[] = {"eps", "x0", "v", "score", "flow"};
  return names[static_cast<int>(p)];
}

Head parse_head(const std::string& name) {
  if (name == "none") return Head::None;
  if (name == "eps2") return Head::Eps2;
  if (name == "epsc") return Head::EpsC;
  fail("unknown head '", name, "'; valid: none, eps2, epsc");
}

std::string head_name(Head h) {
  const char* names[] = {"none", "eps2", "epsc"};
  return names[static_cast<int>(h)];
}

bool ModelMetadata::image_shaped() const {
  return shape.size() == 3 && (shape[0] == 1 || shape[0] == 3 || shape[0] == 4) && shape[1] >= 1 && shape[2] >= 1;
}

NoiseSchedule schedule_from_json(const std::string& text) { return parse_schedule(parse_document(text, "schedule")); }

ModelMetadata resolve_metadata(const std::string& archive_json, const std::string& file_json,
                               const std::vector<std::string>& overrides, const std::string& source) {
  json doc = json::object();
  if (!archive_json.empty()) doc = parse_document(archive_json, "scoreflow.json in " + source);
  if (!file_json.empty()) {
    try {
      doc.merge_patch(parse_document(file_json, "meta_file"));
    } catch (const Error& e) {
      throw Error(e.what(), {{"meta_file", 0}});  // the message starts with the field's name
    }
  }
  for (const std::string& item : overrides) apply_override(doc, item);

  std::vector<std::string> missing;
  for (const char* key : {"prediction", "schedule", "time_input", "shape"})
    if (!doc.contains(key)) missing.push_back(key);
  if (!missing.empty())
    fail("model ", source, (archive_json.empty() ? " has no scoreflow.json metadata and" : "'s metadata"),
         " lacks: ", join(missing), " (give them with ", Field{"meta"}, " key=value or ", Field{"meta_file"},
         " FILE.json)");

  const std::set<std::string> known = {"prediction",  "schedule",   "time_input", "shape",   "data_range",
                                       "num_classes", "head",       "features",   "name",    "description",
                                       "data_prep",   "conditions", "uncond",     "decoder", "encoder"};
  for (auto it = doc.begin(); it != doc.end(); ++it)
    if (!known.count(it.key()))
      fail("metadata field '", it.key(),
           "' is unknown; valid: ", join(std::vector<std::string>(known.begin(), known.end())));

  ModelMetadata m;
  m.prediction = parse_prediction(string_field(doc.at("prediction"), "prediction"));
  m.schedule = parse_schedule(doc.at("schedule"));
  m.time_input = parse_time_input(string_field(doc.at("time_input"), "time_input"));
  const json& shape = doc.at("shape");
  if (!shape.is_array() || shape.empty() || shape.size() > 4)
    fail("metadata field 'shape' must be a list of 1 to 4 positive integers, got ", shape.dump());
  for (const json& d : shape) {
    if (!d.is_number_integer() || d.get<int64_t>() < 1 || d.get<int64_t>() > 65536)
      fail("metadata field 'shape' must be a list of 1 to 4 positive integers, got ", shape.dump());
    m.shape.push_back(d.get<int64_t>());
  }
  // Every dimension may be sane and the product still absurd ([4, 65536, 65536] is 64 GiB per
  // sample); refuse it here rather than fail inside an allocation that names no file.
  int64_t values = 1;
  for (int64_t d : m.shape)
    if ((values *= d) > (int64_t(1) << 26))  // d <= 2^16: no overflow before this check
      fail("metadata field 'shape' ", shape.dump(), " has more than 2^26 values per sample; corrupt metadata?");
  if (doc.contains("data_range")) {
    const json& r = doc.at("data_range");
    if (!r.is_array() || r.size() != 2) fail("metadata field 'data_range' must be [lo, hi], got ", r.dump());
    m.data_min = number(r[0], "data_range[0]");
    m.data_max = number(r[1], "data_range[1]");
    if (!(m.data_max > m.data_min)) fail("metadata field 'data_range' must have lo < hi, got ", r.dump());
  }
  if (doc.contains("num_classes")) {
    const json& n = doc.at("num_classes");
    if (!n.is_number_integer() || n.get<int64_t>() < 0)
      fail("metadata field 'num_classes' must be a non-negative integer, got ", n.dump());
    m.num_classes = n.get<int>();
  }
  if (doc.contains("head")) m.head = parse_head(string_field(doc.at("head"), "head"));
  if (doc.contains("features") && !doc.at("features").is_null())
    m.features = string_field(doc.at("features"), "features");
  if (doc.contains("data_prep") && !doc.at("data_prep").is_null())
    parse_data_prep(doc.at("data_prep"), m);  // validates
  if (doc.contains("conditions") && !doc.at("conditions").is_null())
    m.conditions = parse_conditions(doc.at("conditions"));
  if (doc.contains("uncond") && !doc.at("uncond").is_null()) {
    const std::string u = string_field(doc.at("uncond"), "uncond");
    if (u == "zeros")
      m.uncond = UncondSource::Zeros;
    else if (u == "stored")
      m.uncond = UncondSource::Stored;
    else
      fail("metadata field 'uncond' has unknown value '", u, "'; valid: zeros, stored");
    if (m.conditions.empty()) fail("metadata field 'uncond' is '", u, "' but the model declares no 'conditions'");
  }
  if (doc.contains("decoder") && !doc.at("decoder").is_null()) m.decoder = parse_decoder(doc.at("decoder"), "decoder");
  if (doc.contains("encoder") && !doc.at("encoder").is_null()) {
    const json& e = doc.at("encoder");
    if (!e.is_object() || !e.contains("method") || e.size() != 1)
      fail("metadata field 'encoder' must be {\"method\": NAME}, got ", e.dump());
    m.encoder = string_field(e.at("method"), "encoder.method");
    if (m.encoder.empty()) fail("metadata field 'encoder.method' must name a TorchScript method, got \"\"");
    if (!m.decoder)
      fail("metadata field 'encoder' needs 'decoder' too (its image_shape and image_range say how to read the images ",
           "that are encoded)");
  }
  const bool discrete_time = m.time_input == TimeInput::Index || m.time_input == TimeInput::IndexQuantized ||
                             m.time_input == TimeInput::DpmSolver;
  if (discrete_time && m.schedule.type() != ScheduleType::VpDiscrete)
    fail("metadata field 'time_input' is '", time_input_name(m.time_input), "' but the schedule is ",
         m.schedule.type_name(), " (", time_input_name(m.time_input), " needs vp_discrete)");
  if (m.prediction == Prediction::Flow && m.schedule.type() != ScheduleType::Flow)
    fail("metadata field 'prediction' is 'flow' but the schedule is ", m.schedule.type_name(),
         " (flow needs schedule type flow)");
  if ((m.prediction == Prediction::V) &&
      !(m.schedule.type() == ScheduleType::VpDiscrete || m.schedule.type() == ScheduleType::VpLinear))
    fail("metadata field 'prediction' is 'v' but the schedule is ", m.schedule.type_name(), " (v needs a VP schedule)");
  m.json = doc.dump();
  return m;
}

}  // namespace scoreflow
