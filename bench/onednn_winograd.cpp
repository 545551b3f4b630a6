// oneDNN's direct and Winograd 3x3 convolutions side by side on the demo model's shapes
// (docs/performance.md, "CPU", session 18): ms per call with NCHW input and output (the reorders to
// oneDNN's blocked layout and back counted, as in scoreflow::conv2d_winograd), the kernel oneDNN
// picked, and the largest difference between the two outputs over the largest output.
//   cmake --build build --target scoreflow_onednn_winograd && OMP_NUM_THREADS=2 build/scoreflow_onednn_winograd
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <oneapi/dnnl/dnnl.hpp>
#include <random>
#include <vector>

namespace {

using dnnl::memory;

struct Shape {
  int n, c, size, o;
};

/// Runs one 3x3 convolution (padding 1, bias) with `algorithm` 3 + 20 times; returns ms per call
/// (negative where oneDNN has no kernel) and fills `out`.
double time_conv(dnnl::algorithm algorithm, const Shape& s, const std::vector<float>& src,
                 const std::vector<float>& weights, std::vector<float>& out) {
  const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  const memory::dims src_dims{s.n, s.c, s.size, s.size}, wei_dims{s.o, s.c, 3, 3}, dst_dims{s.n, s.o, s.size, s.size};
  const auto any = [](const memory::dims& d) {
    return memory::desc(d, memory::data_type::f32, memory::format_tag::any);
  };
  const memory::desc bias_md({s.o}, memory::data_type::f32, memory::format_tag::x);
  dnnl::convolution_forward::primitive_desc pd;
  try {
    pd = dnnl::convolution_forward::primitive_desc(
        dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, algorithm, any(src_dims), any(wei_dims),
                                        bias_md, any(dst_dims), {1, 1}, {1, 1}, {1, 1}),
        engine);
  } catch (const dnnl::error&) {
    return -1;
  }
  std::vector<float> bias(s.o, 0.1f);
  out.assign(static_cast<size_t>(s.n) * s.o * s.size * s.size, 0.f);
  memory plain_src({src_dims, memory::data_type::f32, memory::format_tag::nchw}, engine,
                   const_cast<float*>(src.data()));
  memory plain_wei({wei_dims, memory::data_type::f32, memory::format_tag::oihw}, engine,
                   const_cast<float*>(weights.data()));
  memory plain_dst({dst_dims, memory::data_type::f32, memory::format_tag::nchw}, engine, out.data());
  memory bias_m(bias_md, engine, bias.data());
  memory src_m(pd.src_desc(), engine), wei_m(pd.weights_desc(), engine), dst_m(pd.dst_desc(), engine);
  dnnl::reorder(plain_wei, wei_m).execute(stream, plain_wei, wei_m);
  const dnnl::convolution_forward conv(pd);
  const dnnl::reorder to_src(plain_src, src_m), from_dst(dst_m, plain_dst);
  const auto once = [&] {
    to_src.execute(stream, plain_src, src_m);
    conv.execute(stream,
                 {{DNNL_ARG_SRC, src_m}, {DNNL_ARG_WEIGHTS, wei_m}, {DNNL_ARG_BIAS, bias_m}, {DNNL_ARG_DST, dst_m}});
    from_dst.execute(stream, dst_m, plain_dst);
    stream.wait();
  };
  for (int i = 0; i < 3; ++i) once();
  const int reps = 20;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) once();
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / reps;
  std::printf("  %-9s %-28s %8.3f ms\n", algorithm == dnnl::algorithm::convolution_winograd ? "winograd" : "direct",
              pd.impl_info_str(), ms);
  return ms;
}

}  // namespace

int main() {
  const std::vector<Shape> shapes{{8, 48, 32, 48},  {8, 96, 16, 96},  {8, 96, 32, 48}, {8, 96, 32, 96},
                                  {8, 192, 16, 96}, {8, 144, 32, 48}, {8, 96, 8, 96},  {8, 192, 8, 96},
                                  {1, 48, 32, 48},  {1, 96, 16, 96},  {1, 96, 8, 96}};
  std::mt19937 gen(1);
  std::normal_distribution<float> normal;
  for (const Shape& s : shapes) {
    std::printf("batch %d, %d -> %d channels, %dx%d\n", s.n, s.c, s.o, s.size, s.size);
    std::vector<float> src(static_cast<size_t>(s.n) * s.c * s.size * s.size),
        weights(static_cast<size_t>(s.o) * s.c * 9);
    for (float& v : src) v = normal(gen);
    for (float& v : weights) v = 0.05f * normal(gen);
    std::vector<float> direct, winograd;
    time_conv(dnnl::algorithm::convolution_direct, s, src, weights, direct);
    if (time_conv(dnnl::algorithm::convolution_winograd, s, src, weights, winograd) < 0) {
      std::printf("  winograd  no kernel for this shape\n");
      continue;
    }
    double diff = 0, scale = 0;
    for (size_t i = 0; i < direct.size(); ++i) {
      diff = std::max(diff, static_cast<double>(std::fabs(direct[i] - winograd[i])));
      scale = std::max(scale, static_cast<double>(std::fabs(direct[i])));
    }
    std::printf("  max difference / max output %.2g\n", diff / scale);
  }
}
