#pragma once
// The AMED predictor network g_φ (Zhou et al., CVPR 2024, Sec. 4; layer shapes as in the authors'
// AMED_predictor): bottleneck features [B, F] → Linear(F,128)–SiLU–Linear(128,4); σ and σ' →
// 8-channel sinusoidal embedding → shared Linear(8,8)–SiLU (16 values); the 20 concatenated values
// feed three Linear(20,1) heads: r = sigmoid, c = 1 + scale_dir·(2·sigmoid − 1), a likewise with
// scale_time. F = 64: 8 971 parameters. Only files that train or run it include this header.
#include <torch/torch.h>

namespace scoreflow {

struct AmedNetOptions {
  AmedNetOptions(int64_t feature_dim, double scale_dir, double scale_time)
      : feature_dim_(feature_dim), scale_dir_(scale_dir), scale_time_(scale_time) {}
  TORCH_ARG(int64_t, feature_dim);
  TORCH_ARG(double, scale_dir);
  TORCH_ARG(double, scale_time);
  TORCH_ARG(int64_t, hidden) = 128;
  TORCH_ARG(int64_t, bottleneck_out) = 4;
  TORCH_ARG(int64_t, noise_channels) = 8;
};

class AmedNetImpl : public torch::nn::Module {
 public:
  explicit AmedNetImpl(const AmedNetOptions& options);
  /// features [B, F] float32; returns r, c, a as [B].
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> forward(const torch::Tensor& features, double sigma,
                                                                  double sigma_next);
  const AmedNetOptions& options() const { return options_; }

 private:
  /// 8-channel sinusoid of σ (frequencies 10000^{-k/3}, k = 0..3; sin then cos) through map_layer0–SiLU.
  torch::Tensor embed(double sigma, int64_t batch, const torch::TensorOptions& opts);
  AmedNetOptions options_;
  torch::nn::Linear map_layer0{nullptr}, enc_layer0{nullptr}, enc_layer1{nullptr};
  torch::nn::Linear fc_r{nullptr}, fc_scale_dir{nullptr}, fc_scale_time{nullptr};
};
TORCH_MODULE(AmedNet);

}  // namespace scoreflow
