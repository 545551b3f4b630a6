#pragma once
/// Latent models (metadata "decoder", docs/design.md §3): samples live in the network's latent
/// space and become images through a decoder, in batches on the model's device.
#include <torch/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "scoreflow/data.h"
#include "scoreflow/model.h"

namespace scoreflow {

/// Turns samples into images: the identity for a pixel-space model, its decoder for a latent one.
class ImageDecoder {
 public:
  /// The model's own decoder (metadata "decoder"), or the identity when it has none.
  static ImageDecoder for_model(std::shared_ptr<const Model> model);
  /// A separate TorchScript archive whose scoreflow.json has a "decoder" entry, loaded on `device`,
  /// for `model`'s samples. Throws Error naming field "decoder" and the file.
  static ImageDecoder from_file(const std::string& path, std::shared_ptr<const Model> model, torch::Device device);

  /// True when samples go through a decoder.
  bool latent() const { return static_cast<bool>(call_); }
  /// One image's shape ([C, H, W] for image-shaped output).
  const std::vector<int64_t>& image_shape() const { return image_shape_; }
  /// True when images can be written as PNGs ([C, H, W], C in 1, 3, 4).
  bool image_shaped() const;
  double image_min() const { return lo_; }
  double image_max() const { return hi_; }
  /// `model`'s metadata as seen by anything that reads images for it (reference datasets of image
  /// metrics): shape image_shape(), data range [image_min(), image_max()]; data_prep is kept (it
  /// describes the dataset's images). The metadata itself for a pixel-space model.
  ModelMetadata image_metadata(const ModelMetadata& model) const;
  /// Images [N, ...image_shape] float32 on the CPU, `batch` samples per decoder call on the
  /// decoder's device. Throws Error when the decoder returns another shape or NaN/Inf.
  torch::Tensor images(const torch::Tensor& samples, int64_t batch = 16) const;
  /// images() as uint8 NHWC (PNG pixels).
  torch::Tensor uint8_nhwc(const torch::Tensor& samples, int64_t batch = 16) const;

 private:
  std::function<torch::Tensor(const torch::Tensor&)> call_;  ///< one batch of latents → images
  DecoderSpec spec_;
  std::vector<int64_t> image_shape_;
  double lo_ = -1, hi_ = 1;
  torch::Device device_ = torch::kCPU;
  std::string source_;
};

/// How open_model_dataset reads a dataset for a model.
struct ModelDataOptions {
  bool resize = false;        ///< resize + centre-crop items that data_prep does not make fit
  bool skip_bad = false;      ///< skip unreadable image files (counted) instead of failing
  int64_t encode_batch = 16;  ///< images per encoder call (latent models with an encoder)
};

/// The dataset at `path` in `model`'s sample space, for the commands that read data (Γ
/// estimation, NLL, score matching, the W2 bound). A model with metadata "encoder" reads images:
/// the file is opened at the decoder's image_shape and image_range with the model's data_prep, and
/// each batch goes through the encoder method on the model's device, which returns latents in the
/// network's own space (already scaled: diffusers' vae.encode(x).latent_dist.mean ·
/// scaling_factor). Any other model reads its items directly (dataset_options of its metadata).
/// Throws Error naming the file, the field and the shapes.
std::unique_ptr<io::Dataset> open_model_dataset(const std::string& path, std::shared_ptr<const Model> model,
                                                const ModelDataOptions& options = {});

}  // namespace scoreflow
