// Latent models: decoding samples to images through the archive's (or a separate archive's)
// decoder method, in batches on the model's device.
#include "scoreflow/latent.h"

#include <torch/script.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "models/sizes_text.h"
#include "scoreflow/error.h"
#include "scoreflow/image.h"
#include "scoreflow/model_data.h"

namespace scoreflow {

ImageDecoder ImageDecoder::for_model(std::shared_ptr<const Model> model) {
  ImageDecoder d;
  const ModelMetadata& m = model->metadata();
  d.source_ = model->name();
  d.device_ = model->device();
  if (!m.decoder) {
    d.image_shape_ = m.shape;
    d.lo_ = m.data_min, d.hi_ = m.data_max;
    return d;
  }
  d.spec_ = *m.decoder;
  d.image_shape_ = d.spec_.image_shape;
  d.lo_ = d.spec_.image_min, d.hi_ = d.spec_.image_max;
  const std::string method = d.spec_.method;
  d.call_ = [model, method](const torch::Tensor& z) { return model->call_method(method, z); };
  return d;
}

ModelMetadata ImageDecoder::image_metadata(const ModelMetadata& model) const {
  ModelMetadata m = model;
  m.shape = image_shape_;
  m.data_min = lo_, m.data_max = hi_;
  return m;
}

ImageDecoder ImageDecoder::from_file(const std::string& path, std::shared_ptr<const Model> model,
                                     torch::Device device) {
  {
    std::ifstream probe(path, std::ios::binary);
    if (!probe) fail("cannot read ", Field{"decoder"}, " file '", path, "': ", std::strerror(errno));
  }
  torch::jit::ExtraFilesMap extra{{"scoreflow.json", ""}};
  auto module = std::make_shared<torch::jit::Module>();
  try {
    *module = torch::jit::load(path, device, extra);
  } catch (const std::exception& e) {
    fail(Field{"decoder"}, " file '", path, "' could not be loaded as TorchScript: ", summarize_torch_error(e.what()));
  }
  if (extra["scoreflow.json"].empty())
    fail(Field{"decoder"}, " file '", path, "' has no scoreflow.json with a \"decoder\" entry");
  std::string decoder_json;
  try {
    const auto doc = nlohmann::json::parse(extra["scoreflow.json"]);
    if (!doc.is_object() || !doc.contains("decoder")) throw std::runtime_error("no decoder");
    decoder_json = doc.at("decoder").dump();
  } catch (const std::exception&) {
    fail(Field{"decoder"}, " file '", path, "': its scoreflow.json has no \"decoder\" entry");
  }
  ImageDecoder d;
  try {
    d.spec_ = decoder_from_json(decoder_json, "decoder");
  } catch (const Error& e) {
    throw e.prefixed("decoder file '" + path + "': ");
  }
  if (!module->find_method(d.spec_.method))
    fail(Field{"decoder"}, " file '", path, "' has no method '", d.spec_.method, "' (its metadata 'decoder.method')");
  module->eval();
  d.source_ = path;
  d.device_ = device;
  d.image_shape_ = d.spec_.image_shape;
  d.lo_ = d.spec_.image_min, d.hi_ = d.spec_.image_max;
  const std::string method = d.spec_.method;
  d.call_ = [module, method, path](const torch::Tensor& z) {
    std::vector<torch::jit::IValue> in{z};
    torch::jit::IValue r;
    try {
      r = module->get_method(method)(in);
    } catch (const std::exception& e) {
      fail("decoder '", path, "': ", method, "() failed: ", summarize_torch_error(e.what()));
    }
    if (!r.isTensor()) fail("decoder '", path, "': ", method, "() returned ", r.tagKind(), ", expected a Tensor");
    return r.toTensor();
  };
  (void)model;
  return d;
}

bool ImageDecoder::image_shaped() const {
  const auto& s = image_shape_;
  return s.size() == 3 && (s[0] == 1 || s[0] == 3 || s[0] == 4);
}

torch::Tensor ImageDecoder::images(const torch::Tensor& samples, int64_t batch) const {
  if (!latent()) return samples.to(torch::kCPU, torch::kFloat32);
  if (batch < 1) fail(Field{"decode_batch"}, " must be >= 1, got ", batch);
  torch::NoGradGuard no_grad;
  std::vector<int64_t> want{0};
  want.insert(want.end(), image_shape_.begin(), image_shape_.end());
  std::vector<torch::Tensor> out;
  const int64_t n = samples.size(0);
  for (int64_t begin = 0; begin < n; begin += batch) {
    const int64_t count = std::min(batch, n - begin);
    // diffusers: image = vae.decode(latents / scaling_factor [+ shift_factor]).
    const torch::Tensor z = samples.narrow(0, begin, count).to(device_, torch::kFloat32) / spec_.scale + spec_.shift;
    torch::Tensor img = call_(z);
    want[0] = count;
    if (img.sizes() != c10::IntArrayRef(want))
      fail("decoder of ", source_, ": ", spec_.method, "() returned shape ", sizes_text(img.sizes()), " for ",
           sizes_text(z.sizes()), ", expected ", sizes_text(want), " (metadata 'decoder.image_shape')");
    img = img.to(torch::kCPU, torch::kFloat32);
    if (!torch::isfinite(img).all().item<bool>())
      fail("decoder of ", source_, ": ", spec_.method, "() returned NaN or Inf for samples ", begin, "..",
           begin + count - 1);
    out.push_back(img);
  }
  if (out.empty()) return torch::empty(want, torch::kFloat32);
  return torch::cat(out);
}

torch::Tensor ImageDecoder::uint8_nhwc(const torch::Tensor& samples, int64_t batch) const {
  return io::to_uint8_nhwc(images(samples, batch), lo_, hi_);
}

namespace {

/// Images read at the decoder's shape and range, handed out as the encoder's latents.
class EncodedDataset : public io::Dataset {
 public:
  EncodedDataset(std::unique_ptr<io::Dataset> images, std::shared_ptr<const Model> model, int64_t batch)
      : images_(std::move(images)), model_(std::move(model)), batch_(batch) {}

  int64_t size() const override { return images_->size(); }
  std::vector<int64_t> shape() const override { return model_->metadata().shape; }
  int64_t skipped() const override { return images_->skipped(); }
  std::string describe() const override {
    return images_->describe() + ", encoded by " + model_->name() + " " + model_->metadata().encoder + "()";
  }

  torch::Tensor batch(int64_t begin, int64_t count) const override {
    torch::NoGradGuard no_grad;
    const std::string& method = model_->metadata().encoder;
    std::vector<int64_t> want{0};
    const std::vector<int64_t>& latent = model_->metadata().shape;
    want.insert(want.end(), latent.begin(), latent.end());
    std::vector<torch::Tensor> out;
    for (int64_t b = begin; b < begin + count; b += batch_) {
      const int64_t n = std::min(batch_, begin + count - b);
      torch::Tensor z = model_->call_method(method, images_->batch(b, n).to(model_->device()));
      want[0] = n;
      if (z.sizes() != c10::IntArrayRef(want))
        fail("encoder of ", model_->name(), ": ", method, "() returned shape ", sizes_text(z.sizes()), " for ", n,
             " images, expected ", sizes_text(want), " (metadata 'shape')");
      z = z.to(torch::kCPU, torch::kFloat32);
      if (!torch::isfinite(z).all().item<bool>())
        fail("encoder of ", model_->name(), ": ", method, "() returned NaN or Inf for items ", b, "..", b + n - 1);
      out.push_back(z);
    }
    if (out.empty()) return torch::empty(want, torch::kFloat32);
    return torch::cat(out);
  }

 private:
  std::unique_ptr<io::Dataset> images_;
  std::shared_ptr<const Model> model_;
  int64_t batch_;
};

}  // namespace

std::unique_ptr<io::Dataset> open_model_dataset(const std::string& path, std::shared_ptr<const Model> model,
                                                const ModelDataOptions& options) {
  const ModelMetadata& meta = model->metadata();
  const bool encode = !meta.encoder.empty();
  if (encode && options.encode_batch < 1) fail(Field{"encode_batch"}, " must be >= 1, got ", options.encode_batch);
  const ModelMetadata like = encode ? ImageDecoder::for_model(model).image_metadata(meta) : meta;
  io::DatasetOptions o = dataset_options(like);  // shape, range and data_prep
  o.resize = options.resize;
  o.skip_bad = options.skip_bad;
  std::unique_ptr<io::Dataset> data = io::open_dataset(path, o);
  if (!encode) return data;
  return std::make_unique<EncodedDataset>(std::move(data), std::move(model), options.encode_batch);
}

}  // namespace scoreflow
