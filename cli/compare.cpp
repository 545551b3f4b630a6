// scoreflow compare: a sampler × NFE sweep (× σ grid with --schedules) from the same seeds — markdown
// table, CSV, SVG plot and one image grid per cell. The sweep is jobs::run_compare; this reads flags.
#include "scoreflow/compare.h"

#include <cstdio>
#include <map>
#include <optional>

#include "cli/common.h"
#include "cli/sampling_flags.h"
#include "io/text.h"
#include "scoreflow/args.h"
#include "scoreflow/error.h"

namespace scoreflow::cli {
namespace {

struct Options {
  ModelOptions model;
  SamplingFlags s;  // conditioning, guidance, --schedule, --schedule-args, --final, --force
  std::string samplers = "euler,heun", nfe = "3,5,7,9", seeds, schedules;
  std::vector<std::string> sampler_args;  // "NAME:k=v,..." per sampler
  jobs::CompareOptions c;                 // metric options, outputs, --log-x/--log-y, --overwrite
  int num = 64, batch = 64;
  bool json = false;
};

void run(Options& o) {
  auto start = std::chrono::steady_clock::now();
  auto model = o.model.open();
  jobs::CompareOptions& c = o.c;
  c.samplers = io::split_list(o.samplers);
  c.sampler_args = jobs::parse_named_sampler_args(o.sampler_args);
  c.nfe = jobs::nfe_budgets(parse_double_list(o.nfe, "--nfe"));
  c.schedules = io::split_list(o.schedules);
  if (!o.schedules.empty() && c.schedules.empty())
    fail("--schedules is empty; give e.g. karras,kl_optimal,file:g.json");
  c.schedule = o.s.schedule;
  c.schedule_args = o.s.schedule_args;
  c.force = o.s.force;
  c.final = o.s.final;
  c.metric.decode_batch = o.s.cond.decode_batch;
  SampleJob& job = c.job;
  job.seeds = o.seeds.empty() ? parse_seeds("0-" + std::to_string(o.num - 1)) : parse_seeds(o.seeds);
  if (job.seeds.size() < 2) fail("--num/--seeds must give at least 2 samples, got ", job.seeds.size());
  job.batch = o.batch;
  job.device = model->device();
  job.guidance = o.s.guidance;
  // Conditioning and guidance inputs, checked before any output or network call. A conditional
  // model given no conditions is compared as its unconditional model.
  if (o.s.cond.cond.empty()) {
    const std::string note = use_unconditional_input(
        *model, job,
        o.s.cond.uncond.empty() ? std::map<std::string, torch::Tensor>{} : read_arrays(o.s.cond.uncond, "uncond"));
    if (!note.empty()) std::fprintf(stderr, "note: %s\n", note.c_str());
  }
  o.s.cond.apply(*model, job, static_cast<int64_t>(job.seeds.size()), 0, static_cast<int64_t>(job.seeds.size()));
  if (o.s.guidance != 1.0 || o.s.cond.fingerprint() != CondOptions().fingerprint())
    c.extra_settings = {{"conditioning", std::to_string(o.s.guidance) + "|" + o.s.cond.fingerprint()}};
  std::optional<Progress> progress;
  c.on_cell = [&](int64_t done, int64_t total) {
    if (!progress) progress.emplace("compare", total, "cells");
    progress->update(done);
  };
  const jobs::CompareResult r = jobs::run_compare(model, o.s.cond.image_decoder(model), c);
  if (progress) progress->finish();

  if (o.json) {
    nlohmann::json doc = jobs::to_json(r, c);
    doc.update({{"model", model->name()}, {"wall_seconds", seconds_since(start)}});
    return print_json(doc);
  }
  std::fputs(jobs::compare_text(r, c).c_str(), stdout);
}

}  // namespace

void register_compare(CLI::App& app) {
  auto* sub =
      app.add_subcommand("compare", "sweep samplers x NFE budgets from the same seeds: table, CSV, SVG plot, grids");
  static Options o;
  eval::SampleMetricOptions& m = o.c.metric;
  o.c.out_dir_name = "--out-dir", o.c.csv_name = "--csv", o.c.plot_name = "--plot";
  o.model.add(*sub);
  o.s.add(*sub, SamplingFlags::kConditioning | SamplingFlags::kGrid);
  sub->add_option("--samplers", o.samplers, "comma-separated sampler names")->capture_default_str();
  sub->add_option("--sampler-args", o.sampler_args,
                  "options of one sampler, NAME:k=v,... (repeatable; e.g. amed:predictor=amed.pt, ddim:eta=0.5)");
  sub->add_option("--nfe", o.nfe, "comma-separated NFE budgets")->capture_default_str();
  sub->add_option("--num", o.num, "samples per cell (seeds 0..num-1)")->capture_default_str();
  sub->add_option("--seeds", o.seeds, "explicit seeds instead of --num, e.g. 0-63");
  sub->add_option("--metric", m.metric, "fd | w2 | ode-error")->capture_default_str();
  sub->add_option("--features", m.features, "feature network for fd, or none (raw samples)")->capture_default_str();
  sub->add_option("--ref", m.ref, "reference statistics .npz (mu, sigma) for fd");
  sub->add_option("--ref-data", m.ref_data, "reference data for fd, or for w2 (sliced) on non-Gaussian models");
  sub->add_option("--reference-steps", m.reference_steps, "steps of the converged reference for ode-error")
      ->capture_default_str();
  sub->add_option("--reference-sampler", m.reference_sampler, "sampler of the ode-error reference")
      ->capture_default_str();
  sub->add_option("--schedules", o.schedules,
                  "a schedule axis: comma-separated grids and files, e.g. karras,kl_optimal,file:g.json (the "
                  "ode-error reference stays on --schedule)");
  sub->add_option("--out-dir", o.c.out_dir, "directory for table.md, results.csv, plot.svg and grids")->required();
  sub->add_option("--csv", o.c.csv, "CSV path (default OUT_DIR/results.csv)");
  sub->add_option("--plot", o.c.plot, "SVG path (default OUT_DIR/plot.svg)");
  sub->add_flag("--log-x", o.c.log_x, "log-scale NFE axis");
  sub->add_flag("--log-y", o.c.log_y, "log-scale metric axis");
  sub->add_option("--batch", o.batch, "batch size")->capture_default_str();
  sub->add_flag("--json", o.json, "print one JSON document");
  sub->add_flag("--overwrite", o.c.overwrite,
                "discard the finished cells of an earlier, unfinished run instead of resuming it");
  set_action(sub, [sub] {
    o.c.schedule_given = o.s.grid_given() || sub->count("--schedules") > 0;
    run(o);
  });
}

}  // namespace scoreflow::cli
