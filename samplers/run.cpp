#include "scoreflow/run.h"

#include <ATen/ATen.h>

#include "io/npy_detail.h"
#include "scoreflow/error.h"
#include "scoreflow/npy.h"

namespace scoreflow {

void check_final_grid(const Sampler& sampler, const std::vector<double>& sigmas, FinalStep final) {
  sampler.check_final(final);
  if (final != FinalStep::Zero && !sigmas.empty() && !(sigmas.back() > 0))
    fail("final '", final_step_name(final), "' needs a grid ending above 0 (at sigma_min); this one ends at ",
         sigmas.back());
}

void check_init_noise(const torch::Tensor& noise, int64_t n, const std::vector<int64_t>& shape) {
  if (!noise.is_floating_point())
    fail(Field{"init_noise"}, " has dtype ", io::numpy_dtype_name(noise.scalar_type()),
         "; initial noise must be floating point (float32/float64 standard normal draws)");
  std::vector<int64_t> want{n};
  want.insert(want.end(), shape.begin(), shape.end());
  if (noise.sizes() != c10::IntArrayRef(want))
    fail(Field{"init_noise"}, " has shape ", noise.sizes(), ", expected ", c10::IntArrayRef(want),
         " (one row per seed)");
}

torch::Tensor load_init_noise(const std::string& path, int64_t n, const std::vector<int64_t>& shape) {
  const std::map<std::string, io::NpyArray> arrays = io::read_npz(path);
  const auto it = arrays.find("noise");
  if (it == arrays.end()) fail(Field{"init_noise"}, " ", path, " has no array 'noise'");
  torch::Tensor noise = io::to_tensor(it->second);
  // check_init_noise's checks, with the file and the array named (the dtype as the file spells it).
  if (!noise.is_floating_point())
    fail(Field{"init_noise"}, " ", path, ": array 'noise' has dtype ", it->second.dtype,
         "; initial noise must be floating point (float32/float64 standard normal draws)");
  std::vector<int64_t> want{n};
  want.insert(want.end(), shape.begin(), shape.end());
  if (noise.sizes() != c10::IntArrayRef(want))
    fail(Field{"init_noise"}, " ", path, ": array 'noise' has shape ", noise.sizes(), ", expected ",
         c10::IntArrayRef(want), " (one row per seed)");
  if (!torch::isfinite(noise.to(torch::kFloat64)).all().item<bool>())
    fail(Field{"init_noise"}, " ", path, ": array 'noise' has NaN or Inf values");
  return noise;
}

void check_job_conditioning(const Model& model, const SampleJob& job) {
  const ModelMetadata& m = model.metadata();
  const int64_t n = static_cast<int64_t>(job.seeds.size());
  std::vector<std::string> names;
  for (const ConditionSpec& c : m.conditions) names.push_back(c.name);
  if (!m.conditions.empty() && job.cond.empty())
    fail("model ", model.name(), " takes conditioning inputs (", join(names), "): give ", Field{"cond"});
  if (m.conditions.empty() && !job.cond.empty())
    fail(Field{"cond"}, " is given but model ", model.name(), " declares no conditioning inputs");
  if (m.conditions.empty() && !job.uncond.empty())
    fail(Field{"uncond"}, " is given but model ", model.name(), " declares no conditioning inputs");
  const auto check_tables = [&](const ConditionTables& t, const char* field) {
    if (t.values.size() != m.conditions.size())
      fail(Field{field}, " has ", t.values.size(), " tables; the model declares ", m.conditions.size());
    for (size_t k = 0; k < t.values.size(); ++k) {
      const torch::Tensor& v = t.values[k];
      if (v.dim() != static_cast<int64_t>(m.conditions[k].shape.size()) + 1 ||
          v.sizes().slice(1) != c10::IntArrayRef(m.conditions[k].shape) || (v.size(0) != 1 && v.size(0) != t.rows) ||
          v.scalar_type() != m.conditions[k].dtype)
        fail(Field{field}, " table '", m.conditions[k].name, "' has shape ", v.sizes(), " (",
             c10::toString(v.scalar_type()), "), expected ", table_shape_text(m.conditions[k]), " (",
             c10::toString(m.conditions[k].dtype), ")");
    }
  };
  if (job.labels.defined() && (job.labels.dim() != 1 || job.labels.size(0) != n))
    fail(Field{"labels"}, " has shape ", job.labels.sizes(), " for ", n, " samples; expected [", n, "]");
  if (!job.cond.empty()) {
    check_tables(job.cond, "cond");
    if (static_cast<int64_t>(job.cond_rows.size()) != n)
      fail(Field{"cond_rows"}, " has ", job.cond_rows.size(), " entries for ", n, " samples");
    for (size_t i = 0; i < job.cond_rows.size(); ++i)
      if (job.cond_rows[i] < 0 || job.cond_rows[i] >= job.cond.rows)
        fail(Field{"cond_rows"}, " entry ", i, " is row ", job.cond_rows[i], " but the conditioning arrays have ",
             job.cond.rows, " rows");
  }
  if (!job.uncond.empty()) {
    check_tables(job.uncond, "uncond");
    check_uncond_rows(job.cond, job.uncond);
  }
  if (!(job.guidance_lo >= 0 && job.guidance_lo <= job.guidance_hi))
    fail(Field{"guidance_interval"}, " [", job.guidance_lo, ", ", job.guidance_hi, "] must have 0 <= lo <= hi");
  if (!(job.guidance_rescale >= 0 && job.guidance_rescale <= 1))
    fail(Field{"guidance_rescale"}, " must be in [0, 1], got ", job.guidance_rescale);
  if (job.guidance != 1.0 && m.num_classes == 0 && m.conditions.empty())
    fail(Field{"guidance"}, " ", job.guidance, " needs a class-conditional model or conditioning inputs; ",
         model.name(), " has num_classes 0 and no conditions");
  if (job.guidance != 1.0 && !m.conditions.empty() && job.uncond.empty()) {
    if (m.uncond == UncondSource::None)
      fail(Field{"guidance"}, " ", job.guidance, " needs unconditional values for the conditions (", join(names),
           "): give ", Field{"uncond"}, " or declare metadata 'uncond' (zeros or stored)");
    if (m.uncond == UncondSource::Stored)
      for (const std::string& name : names) model.stored_uncond(name);  // throws naming a bad attribute
  }
}

std::string use_unconditional_input(const Model& model, SampleJob& job,
                                    const std::map<std::string, torch::Tensor>& uncond) {
  if (model.metadata().conditions.empty() || !job.cond.empty()) return "";
  const int64_t n = static_cast<int64_t>(job.seeds.size());
  const ItemConditions c = item_conditions(model, n, {}, uncond);
  job.cond = c.tables;
  job.cond_rows = condition_rows(n, c.tables.rows, {});
  return "model " + model.name() +
         " is conditional and no cond is given; it is sampled with its unconditional input (" +
         (c.source == "uncond" ? std::string("the uncond arrays") : c.source) + ")";
}

Conditioning batch_conditioning(const SampleJob& job, int64_t begin, int64_t count, const torch::Device& device) {
  Conditioning cond;
  if (job.labels.defined()) cond.labels = job.labels.narrow(0, begin, count).to(device);
  cond.guidance = job.guidance;
  cond.guidance_lo = job.guidance_lo;
  cond.guidance_hi = job.guidance_hi;
  cond.rescale = job.guidance_rescale;
  cond.conds = job.cond.gather(job.cond_rows, begin, count, device);
  if (!job.uncond.empty()) {
    if (job.uncond.rows == 1) {
      for (const torch::Tensor& v : job.uncond.values) cond.unconds.push_back(v.to(device));  // one shared row
    } else {
      cond.unconds = job.uncond.gather(job.cond_rows, begin, count, device);
    }
  }
  return cond;
}

Conditioning samples_conditioning(const SampleJob& job, const std::vector<int64_t>& samples,
                                  const torch::Device& device) {
  // The picked samples as a job of their own: the same tables and guidance, their rows and labels.
  SampleJob picked = job;
  picked.cond_rows.clear();
  for (int64_t s : samples) {
    if (!job.cond.empty()) {
      if (s < 0 || s >= static_cast<int64_t>(job.cond_rows.size()))
        fail(Field{"samples"}, " index ", s, " is outside the job's ", job.cond_rows.size(), " samples");
      picked.cond_rows.push_back(job.cond_rows[static_cast<size_t>(s)]);
    }
    if (job.labels.defined() && (s < 0 || s >= job.labels.size(0)))
      fail(Field{"samples"}, " index ", s, " is outside the job's ", job.labels.size(0), " labels");
  }
  if (job.labels.defined()) picked.labels = job.labels.index_select(0, torch::tensor(samples, torch::kLong));
  return batch_conditioning(picked, 0, static_cast<int64_t>(samples.size()), device);
}

SampleResult run_sampler(const Sampler& sampler, std::shared_ptr<const Model> model, const SampleJob& job,
                         const BatchCallback& on_batch, const StepCallback& on_step) {
  check_grid(sampler, job.sigmas);
  check_final_grid(sampler, job.sigmas, job.final);
  const auto& shape = model->metadata().shape;
  const int64_t n = static_cast<int64_t>(job.seeds.size());
  if (n == 0) fail("no seeds to sample");
  if (job.batch < 1) fail(Field{"batch"}, " must be >= 1, got ", job.batch);
  if (job.init_noise.defined()) check_init_noise(job.init_noise, n, shape);
  check_job_conditioning(*model, job);
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> out;
  SampleResult result;
  for (int64_t begin = 0; begin < n; begin += job.batch) {
    const int64_t count = std::min<int64_t>(job.batch, n - begin);
    std::vector<uint64_t> seeds(job.seeds.begin() + begin, job.seeds.begin() + begin + count);
    NoiseSource noise(seeds);
    torch::Tensor eps = noise.randn(shape);  // always drawn, so later draws do not depend on --init-noise
    if (job.init_noise.defined()) eps = job.init_noise.narrow(0, begin, count).to(torch::kFloat32);
    torch::Tensor x = (eps * job.sigmas.front()).to(job.device);
    Denoiser denoiser(model, batch_conditioning(job, begin, count, job.device));
    // The state is checked (by the denoiser) as it enters every network call, so a blow-up is
    // reported with its step and sigma; the state after the last step is checked here.
    const int steps = static_cast<int>(job.sigmas.size()) - 1;
    denoiser.begin_steps(sampler.name(), steps);
    const StepCallback track = [&](int i, int n, double sigma_next) {
      denoiser.step_done(i);
      if (on_step) on_step(i, n, sigma_next);
    };
    x = sampler.sample(denoiser, x, job.sigmas, noise, track);
    if (job.final == FinalStep::Denoise) x = denoiser(x, job.sigmas.back());
    denoiser.check_finite();
    // One flag per batch keeps the loop free of host syncs.
    if (!torch::isfinite(x).all().item<bool>())
      fail("sampler ", sampler.name(), ": the state became NaN or Inf in its last step (", steps, " of ", steps,
           ", sigma ", job.sigmas[steps - 1], " -> ", job.sigmas.back(), ") for seeds ", seeds.front(), "..",
           seeds.back(), "; every network output was finite");
    result.nfe = denoiser.nfe();
    out.push_back(x.to(torch::kCPU, torch::kFloat32));
    if (on_batch) on_batch(begin + count, n);
  }
  result.samples = torch::cat(out);
  return result;
}

}  // namespace scoreflow
