#include "samplers/amed_predictor.h"

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/fsutil.h"
#include "scoreflow/amed.h"
#include "scoreflow/args.h"
#include "scoreflow/error.h"
#include "scoreflow/fingerprint.h"

namespace scoreflow {

// ---- the network --------------------------------------------------------------------------------

AmedNetImpl::AmedNetImpl(const AmedNetOptions& o) : options_(o) {
  TORCH_CHECK(o.feature_dim() > 0, "Invalid feature_dim: ", o.feature_dim());
  TORCH_CHECK(o.scale_dir() >= 0 && o.scale_dir() < 1, "Invalid scale_dir: ", o.scale_dir());
  TORCH_CHECK(o.scale_time() >= 0 && o.scale_time() < 1, "Invalid scale_time: ", o.scale_time());
  const int64_t head_in = 2 * o.noise_channels() + o.bottleneck_out();
  map_layer0 = register_module("map_layer0", torch::nn::Linear(o.noise_channels(), o.noise_channels()));
  enc_layer0 = register_module("enc_layer0", torch::nn::Linear(o.feature_dim(), o.hidden()));
  enc_layer1 = register_module("enc_layer1", torch::nn::Linear(o.hidden(), o.bottleneck_out()));
  fc_r = register_module("fc_r", torch::nn::Linear(head_in, 1));
  fc_scale_dir = register_module("fc_scale_dir", torch::nn::Linear(head_in, 1));
  fc_scale_time = register_module("fc_scale_time", torch::nn::Linear(head_in, 1));
  // Initialisation as the authors': Kaiming-normal weights (std 1/sqrt(fan_in)) and zero biases,
  // Xavier-uniform for the embedding layer.
  torch::NoGradGuard no_grad;
  for (torch::nn::Linear* l : {&enc_layer0, &enc_layer1, &fc_r, &fc_scale_dir, &fc_scale_time}) {
    (*l)->weight.normal_(0.0, 1.0 / std::sqrt(double((*l)->weight.size(1))));
    (*l)->bias.zero_();
  }
  const double bound = std::sqrt(6.0 / double(2 * o.noise_channels()));
  map_layer0->weight.uniform_(-bound, bound);
  map_layer0->bias.zero_();
}

torch::Tensor AmedNetImpl::embed(double sigma, int64_t batch, const torch::TensorOptions& opts) {
  const int64_t half = options_.noise_channels() / 2;
  std::vector<double> values(2 * half);
  for (int64_t k = 0; k < half; ++k) {
    const double freq = std::pow(1e-4, double(k) / double(half - 1));  // endpoint=True spacing
    values[k] = std::sin(sigma * freq);
    values[half + k] = std::cos(sigma * freq);
  }
  torch::Tensor e = torch::tensor(values, torch::kFloat64).to(opts).unsqueeze(0);
  return torch::silu(map_layer0(e)).expand({batch, 2 * half});
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> AmedNetImpl::forward(const torch::Tensor& features,
                                                                             double sigma, double sigma_next) {
  const auto opts = map_layer0->weight.options();
  torch::Tensor f = features.to(opts).reshape({features.size(0), -1});
  if (f.size(1) != options_.feature_dim())
    fail("AMED predictor expects ", options_.feature_dim(), " bottleneck features, got ", f.size(1));
  torch::Tensor h = enc_layer1(torch::silu(enc_layer0(f)));
  torch::Tensor in = torch::cat({h, embed(sigma, f.size(0), opts), embed(sigma_next, f.size(0), opts)}, 1);
  torch::Tensor r = torch::sigmoid(fc_r(in)).squeeze(1);
  torch::Tensor c = 1 + options_.scale_dir() * (2 * torch::sigmoid(fc_scale_dir(in)) - 1).squeeze(1);
  torch::Tensor a = 1 + options_.scale_time() * (2 * torch::sigmoid(fc_scale_time(in)) - 1).squeeze(1);
  return {r, c, a};
}

// ---- record <-> JSON ----------------------------------------------------------------------------

namespace {

constexpr const char* kArchiveKey = "scoreflow_amed";
constexpr const char* kFormat = "scoreflow-amed";

nlohmann::json record_json(const AmedRecord& r) {
  return {{"format", kFormat},
          {"version", 1},
          {"student", r.student},
          {"teacher", r.teacher},
          {"steps", r.steps},
          {"final", final_step_name(r.final)},
          {"M", r.M},
          {"afs", r.afs},
          {"scale_dir", r.scale_dir},
          {"scale_time", r.scale_time},
          {"feature_dim", r.feature_dim},
          {"features", r.features},
          {"sigmas", r.sigmas},
          {"schedule", r.schedule},
          {"model", r.model},
          {"model_hash", r.model_hash},
          {"schedule_name", r.schedule_name},
          {"trajectories", r.trajectories},
          {"seed", r.seed},
          {"validation_rms", r.validation_rms}};
}

AmedRecord record_from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object() || j.value("format", "") != kFormat) fail(source, " is not a scoreflow AMED predictor/table");
  AmedRecord r;
  try {
    r.student = j.at("student").get<std::string>();
    r.teacher = j.at("teacher").get<std::string>();
    r.steps = j.at("steps").get<int>();
    r.final = parse_final_step(j.value("final", "zero"));  // written before the field: zero
    r.M = j.at("M").get<int>();
    r.afs = j.at("afs").get<bool>();
    r.scale_dir = j.at("scale_dir").get<double>();
    r.scale_time = j.at("scale_time").get<double>();
    r.feature_dim = j.at("feature_dim").get<int>();
    r.features = j.at("features").get<bool>();
    r.sigmas = j.at("sigmas").get<std::vector<double>>();
    r.schedule = j.at("schedule").get<std::string>();
    r.model = j.at("model").get<std::string>();
    r.model_hash = j.at("model_hash").get<std::string>();
    r.schedule_name = j.value("schedule_name", "");
    r.trajectories = j.value("trajectories", int64_t{0});
    r.seed = j.value("seed", uint64_t{0});
    r.validation_rms = j.value("validation_rms", -1.0);
  } catch (const nlohmann::json::exception& e) {
    fail(source, ": malformed AMED record: ", e.what());
  } catch (const Error& e) {
    fail(source, ": malformed AMED record: ", e.what());
  }
  return r;
}

AmedNet& as_net(const std::shared_ptr<void>& p) { return *static_cast<AmedNet*>(p.get()); }

std::string grid_text(const std::vector<double>& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

}  // namespace

// ---- predictor ------------------------------------------------------------------------------------

AmedPredictor::AmedPredictor(AmedRecord record) : record_(std::move(record)) {
  net_ = std::make_shared<AmedNet>(AmedNetOptions(record_.feature_dim, record_.scale_dir, record_.scale_time));
}

void AmedPredictor::to(torch::Device device) { as_net(net_)->to(device); }

AmedPredictor AmedPredictor::load(const std::string& path) {
  torch::serialize::InputArchive archive;
  c10::IValue meta;
  try {
    // Onto the CPU whatever device the tensors were saved from: files that a CUDA build wrote
    // before save() was fixed hold cuda:0 tensors, which a CPU-only LibTorch cannot create.
    archive.load_from(path, torch::Device(torch::kCPU));
  } catch (const c10::Error&) {
    io::read_file(path);  // names a missing/unreadable file
    fail("'", path, "' is not an AMED predictor file (not a torch serialize archive)");
  }
  if (!archive.try_read(kArchiveKey, meta) || !meta.isString())
    fail("'", path, "' is not an AMED predictor file (no '", kArchiveKey, "' record)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(meta.toStringRef());
  } catch (const nlohmann::json::exception& e) {
    fail("'", path, "': malformed AMED record: ", e.what());
  }
  AmedPredictor p(record_from_json(j, "'" + path + "'"));
  try {
    as_net(p.net_)->load(archive);
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    fail("'", path, "': AMED network parameters do not load: ", msg.substr(0, msg.find('\n')));
  }
  as_net(p.net_)->eval();
  return p;
}

void AmedPredictor::save(const std::string& path) const {
  torch::serialize::OutputArchive archive;
  // Parameters are written from the CPU so that the file loads on machines without a GPU. The
  // archive holds the parameters themselves, not copies: the net goes back to its device only
  // after the bytes are written (moving it earlier wrote cuda:0 tensors into the file).
  AmedNet net = as_net(net_);
  const torch::Device device = net->parameters().front().device();
  std::ostringstream os;
  net->to(torch::kCPU);
  try {
    net->save(archive);
    archive.write(kArchiveKey, c10::IValue(record_json(record_).dump()));
    archive.save_to(os);
  } catch (...) {
    net->to(device);
    throw;
  }
  net->to(device);
  io::write_file_atomic(path, os.str());
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> AmedPredictor::forward(const torch::Tensor& features,
                                                                               double sigma, double sigma_next) const {
  return as_net(net_)->forward(features, sigma, sigma_next);
}

AmedCoefficients AmedPredictor::predict(const torch::Tensor& features, double sigma, double sigma_next) const {
  torch::NoGradGuard no_grad;
  auto [r, c, a] = forward(features, sigma, sigma_next);
  torch::Tensor all = torch::stack({r, c, a}).to(torch::kCPU, torch::kFloat64).contiguous();
  const int64_t b = all.size(1);
  const double* p = all.data_ptr<double>();
  return {std::vector<double>(p, p + b), std::vector<double>(p + b, p + 2 * b),
          std::vector<double>(p + 2 * b, p + 3 * b)};
}

std::vector<AmedTableRow> AmedPredictor::table() const {
  if (record_.features)
    fail(
        "this AMED predictor reads the model's bottleneck features; only a table-mode predictor (trained on a model "
        "without 'features') has a per-step table");
  const auto& s = record_.sigmas;
  const size_t positive = s.back() == 0 ? s.size() - 1 : s.size();
  torch::Tensor zeros = torch::zeros({1, record_.feature_dim});
  std::vector<AmedTableRow> rows;
  for (size_t i = 0; i + 1 < positive; ++i) {
    AmedCoefficients k = predict(zeros, s[i], s[i + 1]);
    rows.push_back({s[i], s[i + 1], k.r[0], std::pow(s[i + 1], k.r[0]) * std::pow(s[i], 1 - k.r[0]), k.c[0], k.a[0]});
  }
  return rows;
}

void AmedPredictor::check_compatible(const Model& model, const std::vector<double>& sigmas) const {
  check_amed_record(record_, model, sigmas, "AMED predictor");
}

// ---- compatibility, hashing, tables -------------------------------------------------------------------

void check_amed_record(const AmedRecord& r, const Model& model, const std::vector<double>& sigmas,
                       const std::string& source) {
  const std::string hash = model_fingerprint(model);
  if (r.model_hash != hash)
    fail(source, " was trained for model '", r.model, "' (model_hash ", r.model_hash, "), not '", model.name(),
         "' (model_hash ", hash, "): field 'model_hash' differs");
  const std::string schedule = model.metadata().schedule.describe();
  if (r.schedule != schedule)
    fail(source, " was trained for schedule ", r.schedule, ", the model has ", schedule, ": field 'schedule' differs");
  if (r.sigmas.size() != sigmas.size())
    fail(source, " was trained for ", r.sigmas.size() - 1, " steps on sigmas ", grid_text(r.sigmas), "; this grid has ",
         sigmas.size() - 1, " steps ", grid_text(sigmas), ": field 'sigmas' differs (use the training ", Field{"steps"},
         "/", Field{"schedule"}, r.schedule_name.empty() ? "" : " " + r.schedule_name, ")");
  for (size_t i = 0; i < sigmas.size(); ++i)
    if (std::abs(r.sigmas[i] - sigmas[i]) > 1e-9 * std::max(std::abs(r.sigmas[i]), 1e-300))
      fail(source, " was trained on sigmas ", grid_text(r.sigmas), "; this grid has ", grid_text(sigmas), " (position ",
           i, " differs): field 'sigmas' differs (use the training ", Field{"steps"}, "/", Field{"schedule"},
           r.schedule_name.empty() ? "" : " " + r.schedule_name, ")");
}

std::vector<double> amed_trained_sigmas(const std::string& sampler, const std::string& sampler_args) {
  if (sampler != "amed" && sampler != "amed_plugin") return {};
  const KeyValueArgs args(sampler_args, "sampler arg");
  const std::string predictor = args.get_string("predictor", ""), table = args.get_string("table", "");
  if (!predictor.empty()) return AmedPredictor::load(predictor).record().sigmas;
  if (!table.empty()) return load_amed_table(table).first.sigmas;
  return {};
}

void save_amed_table(const std::string& path, const AmedRecord& record, const std::vector<AmedTableRow>& rows) {
  nlohmann::json j = record_json(record);
  j["format"] = std::string(kFormat);
  j["table"] = nlohmann::json::array();
  for (const AmedTableRow& t : rows)
    j["table"].push_back(
        {{"sigma", t.sigma}, {"sigma_next", t.sigma_next}, {"r", t.r}, {"s", t.s}, {"c", t.c}, {"a", t.a}});
  io::write_file_atomic(path, j.dump(2) + "\n");
}

std::pair<AmedRecord, std::vector<AmedTableRow>> load_amed_table(const std::string& path) {
  std::vector<uint8_t> bytes = io::read_file(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(bytes.begin(), bytes.end());
  } catch (const nlohmann::json::exception& e) {
    fail("AMED table '", path, "' is not JSON: ", e.what());
  }
  AmedRecord record = record_from_json(j, "AMED table '" + path + "'");
  std::vector<AmedTableRow> rows;
  try {
    for (const auto& t : j.at("table"))
      rows.push_back({t.at("sigma").get<double>(), t.at("sigma_next").get<double>(), t.at("r").get<double>(),
                      t.at("s").get<double>(), t.at("c").get<double>(), t.at("a").get<double>()});
  } catch (const nlohmann::json::exception& e) {
    fail("AMED table '", path, "': malformed 'table': ", e.what());
  }
  const size_t positive =
      record.sigmas.empty() ? 0 : (record.sigmas.back() == 0 ? record.sigmas.size() - 1 : record.sigmas.size());
  if (positive < 2 || rows.size() != positive - 1)
    fail("AMED table '", path, "' has ", rows.size(), " rows for a grid of ", record.sigmas.size(), " points");
  for (size_t i = 0; i < rows.size(); ++i) {
    const AmedTableRow& t = rows[i];
    if (t.sigma != record.sigmas[i] || t.sigma_next != record.sigmas[i + 1])
      fail("AMED table '", path, "': row ", i, " is for sigma ", t.sigma, " -> ", t.sigma_next, ", the grid says ",
           record.sigmas[i], " -> ", record.sigmas[i + 1]);
    if (!(t.r >= 0 && t.r <= 1) || !(t.c > 0) || !(t.a > 0))
      fail("AMED table '", path, "': row ", i, " needs 0 <= r <= 1, c > 0, a > 0");
  }
  return {record, rows};
}

}  // namespace scoreflow
