// A program built against the installed scoreflow package (find_package(scoreflow)): open a model,
// sample the same seeds with two samplers on the same grid, and write both grids side by side as
// one PNG (top row: the first sampler, bottom row: the second).
//
//   sample_two_samplers [MODEL] [OUT.png]     MODEL: a TorchScript file or builtin:NAME (builtin:gmm)
#include <cstdio>
#include <string>
#include <vector>

#include "scoreflow/scoreflow.h"

int main(int argc, char** argv) {
  const std::string spec = argc > 1 ? argv[1] : "builtin:gmm";
  const std::string out = argc > 2 ? argv[2] : "two_samplers.png";
  try {
    std::shared_ptr<scoreflow::Model> model = scoreflow::open_model(spec);
    const scoreflow::ModelMetadata& meta = model->metadata();
    if (!meta.image_shaped()) scoreflow::fail("model ", spec, " does not give image-shaped samples");

    scoreflow::SampleJob job;
    job.sigmas = scoreflow::make_sigmas("karras", 10, meta.schedule, {});
    for (uint64_t seed = 0; seed < 8; ++seed) job.seeds.push_back(seed);

    // One sampler by name with "k=v" options (as the CLI takes them), one from typed options.
    const std::unique_ptr<scoreflow::Sampler> heun = scoreflow::make_sampler("heun");
    const scoreflow::DpmppMultistep dpmpp_3m(scoreflow::DpmppOptions().order(3));
    const std::vector<const scoreflow::Sampler*> samplers = {heun.get(), &dpmpp_3m};
    std::vector<torch::Tensor> rows;
    for (const scoreflow::Sampler* sampler : samplers) {
      const scoreflow::SampleResult result = scoreflow::run_sampler(*sampler, model, job);
      std::printf("%-9s %lld samples, %lld network calls each\n", sampler->name().c_str(),
                  static_cast<long long>(result.samples.size(0)), static_cast<long long>(result.nfe));
      rows.push_back(scoreflow::io::to_uint8_nhwc(result.samples, meta.data_min, meta.data_max));
    }
    scoreflow::io::write_png(out, scoreflow::io::make_grid(torch::cat(rows), 8));
    std::printf("wrote %s\n", out.c_str());
  } catch (const scoreflow::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
