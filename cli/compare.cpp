// scoreflow compare: a sampler × NFE sweep (× σ grid with --schedules) from the same seeds — markdown
// table, CSV, SVG plot and one image grid per cell.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include "cli/common.h"
#include "cli/cond_options.h"
#include "cli/job_flags.h"
#include "cli/list_arg.h"
#include "cli/sampling_flags.h"
#include "eval/sweep.h"
#include "io/fsutil.h"
#include "scoreflow/amed.h"
#include "scoreflow/builtin.h"
#include "scoreflow/error.h"
#include "scoreflow/features.h"
#include "scoreflow/image.h"
#include "scoreflow/metrics.h"
#include "scoreflow/registry.h"
#include "scoreflow/run.h"
#include "scoreflow/schedule_file.h"
#include "scoreflow/score_matching.h"
#include "scoreflow/sigmas.h"

namespace scoreflow::cli {
namespace {

struct Options {
  ModelOptions model;
  SamplingFlags s;  // conditioning, guidance, --schedule, --schedule-args, --final, --force
  std::string samplers = "euler,heun", nfe = "3,5,7,9", seeds, metric = "w2", features = "none", ref, ref_data;
  std::string schedules, out_dir, csv, plot, reference_sampler = "heun";
  std::vector<std::string> sampler_args;  // "NAME:k=v,..." per sampler
  int num = 64, reference_steps = 500, batch = 64;
  bool json = false, log_x = false, log_y = false, overwrite = false;
  bool grid_given = false;  // --schedule/--schedules/--schedule-args given (else an AMED predictor's own grid)
};

/// "grid_euler_nfe5.png", with a schedule axis "grid_euler_kl_optimal_nfe5.png" (other characters → '_').
std::string grid_file(const std::string& sampler, const std::string& schedule, int budget) {
  std::string tag = schedule;
  for (char& ch : tag)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return "grid_" + sampler + (tag.empty() ? "" : "_" + tag) + "_nfe" + std::to_string(budget) + ".png";
}

/// The metric of one cell's samples [N, ...shape] (float32, data range).
class Metric {
 public:
  Metric(const Options& o, std::shared_ptr<const Model> model, const SampleJob& job, const io::Memo& memo,
         const ImageDecoder& decoder)
      : o_(o), model_(std::move(model)), decoder_(decoder) {
    const ModelMetadata& meta = model_->metadata();
    if (o.metric == "w2") {
      auto gauss = std::dynamic_pointer_cast<const GaussianMixtureModel>(model_);
      if (gauss && gauss->weights().numel() == 1) {
        mu_ = gauss->means()[0];
        cov_ = torch::diag(gauss->variances()[0]);
        label_ = "W2 (Bures, sample moments vs the model's Gaussian)";
      } else {
        if (o.ref_data.empty())
          fail("--metric w2 on a model other than builtin:gaussian needs --ref-data (sliced W2 against the data)");
        ref_rows_ = eval::load_data_rows(o.ref_data, model_);  // a latent model's encoder applies
        label_ = "sliced W2 vs " + o.ref_data;
      }
    } else if (o.metric == "fd") {
      features_ = std::make_unique<eval::FeatureExtractor>(o.features, model_->device());
      if (!o.ref.empty() == !o.ref_data.empty())
        fail("--metric fd needs exactly one of --ref stats.npz or --ref-data DATASET");
      if (!o.ref.empty()) {
        std::tie(mu_, cov_) = eval::load_feature_stats(o.ref);
      } else {
        // The reference data are images, so a latent model's images' shape and range read them.
        const ModelMetadata image = decoder_.image_metadata(meta);
        torch::Tensor rows = eval::load_data_rows(o.ref_data, image);
        std::vector<int64_t> shape{rows.size(0)};
        shape.insert(shape.end(), image.shape.begin(), image.shape.end());
        const metrics::MomentAccumulator acc =
            feature_moments(rows.reshape(shape).to(torch::kFloat32), image.data_min, image.data_max);
        if (acc.count() < 2)
          fail("--ref-data ", o.ref_data, " has ", acc.count(), " items; a covariance needs at least 2");
        mu_ = acc.mean();
        cov_ = acc.covariance();
      }
      label_ = std::string("FD (") + (o.features == "none" ? "raw samples" : o.features) + ")";
    } else if (o.metric == "ode-error") {
      auto sampler = make_sampler(o.reference_sampler);
      SampleJob ref = job;
      ref.sigmas =
          grid_sigmas(o.s.schedule, o.s.schedule_args, o.reference_steps, o.reference_steps, *model_, o.s.force);
      reference_ = io::memoize(memo, "reference", [&] { return run_sampler(*sampler, model_, ref).samples; })
                       .to(torch::kFloat64)
                       .flatten(1);
      label_ = "RMS distance to " + o.reference_sampler + " with " + std::to_string(o.reference_steps) + " steps";
    } else {
      fail("--metric '", o.metric, "' is unknown; valid: fd, w2, ode-error");
    }
  }

  double operator()(const torch::Tensor& samples) const {
    torch::Tensor x = samples.to(torch::kFloat64).flatten(1);
    if (o_.metric == "ode-error") return std::sqrt((x - reference_).pow(2).sum(1).mean().item<double>());
    if (o_.metric == "w2") {
      if (ref_rows_.defined()) return std::sqrt(metrics::sliced_w2_squared(x, ref_rows_));
      metrics::MomentAccumulator acc;
      acc.add(x);
      return std::sqrt(std::max(0.0, metrics::gaussian_w2_squared(acc.mean(), acc.covariance(), mu_, cov_)));
    }
    // Image metrics see images: a latent model's samples go through its decoder.
    const metrics::MomentAccumulator acc =
        feature_moments(decoder_.images(samples, o_.s.cond.decode_batch), decoder_.image_min(), decoder_.image_max());
    if (acc.dim() != mu_.size(0))
      fail("--ref statistics have dimension ", mu_.size(0), " but the features have ", acc.dim());
    return metrics::frechet_distance(acc.mean(), acc.covariance(), mu_, cov_);
  }

  const std::string& label() const { return label_; }

 private:
  /// Feature moments of x through eval fid's extraction (scoreflow/features.h), in one network
  /// call as compare always made it.
  metrics::MomentAccumulator feature_moments(const torch::Tensor& x, double lo, double hi) const {
    return eval::extract_features(*features_, x, lo, hi, std::max<int64_t>(1, x.size(0)), false).moments;
  }

  const Options& o_;
  std::shared_ptr<const Model> model_;
  const ImageDecoder& decoder_;
  std::unique_ptr<eval::FeatureExtractor> features_;
  torch::Tensor mu_, cov_, ref_rows_, reference_;
  std::string label_;
};

void write_text(const std::string& path, const std::string& text) { io::write_file_atomic(path, text); }

void run(const Options& o) {
  auto start = std::chrono::steady_clock::now();
  auto model = o.model.open();
  const std::vector<std::string> names = split_commas(o.samplers);
  if (names.empty()) fail("--samplers is empty; give e.g. euler,heun");
  std::map<std::string, std::string> args_of;
  for (const std::string& item : o.sampler_args) {
    const size_t colon = item.find(':');
    if (colon == std::string::npos || colon == 0)
      fail("--sampler-args '", item, "' must be NAME:k=v,... (e.g. amed:predictor=amed.pt)");
    const std::string name = item.substr(0, colon);
    if (std::find(names.begin(), names.end(), name) == names.end())
      fail("--sampler-args names '", name, "', which is not in --samplers (", o.samplers, ")");
    args_of[name] = item.substr(colon + 1);
  }
  std::vector<std::unique_ptr<Sampler>> samplers;
  std::vector<FinalStep> finals;                        // per sampler: --final, or its own default
  std::map<std::string, std::vector<double>> own_grid;  // AMED predictors' grids, used when no --schedule is given
  for (const auto& n : names) {
    samplers.push_back(make_sampler(n, args_of[n]));  // bad names/args fail before any work
    finals.push_back(final_step_for(o.s.final, *samplers.back(), args_of[n]));
    if (!o.grid_given) own_grid[samplers.back()->name()] = amed_trained_sigmas(n, args_of[n]);
  }
  std::vector<int> budgets;
  for (double v : parse_double_list(o.nfe, "--nfe")) {
    if (v < 0 || v != std::floor(v)) fail("--nfe values must be non-negative integers, got ", v);
    budgets.push_back(static_cast<int>(v));
  }
  if (o.out_dir.empty()) fail("give --out-dir for the table, CSV, plot and grids");
  // The schedule axis, and any schedule file: each grid name is checked by building it once, each
  // file against the model, before any sampling.
  const std::vector<std::string> schedules =
      o.schedules.empty() ? std::vector<std::string>{o.s.schedule} : split_commas(o.schedules);
  if (!o.schedules.empty()) {
    if (schedules.empty()) fail("--schedules is empty; give e.g. karras,kl_optimal,file:g.json");
    if (!o.s.schedule_args.empty())
      fail("--schedule-args applies to --schedule alone; the --schedules grids take their defaults (or are files)");
  }
  for (const std::string& s : schedules)
    if (!o.schedules.empty() || !schedule_file_path(s).empty()) grid_sigmas(s, "", 0, 10, *model, o.s.force);
  if (o.metric == "ode-error" && !schedule_file_path(o.s.schedule).empty())
    fail("--metric ode-error needs a named --schedule for its ", o.reference_steps, "-step reference, not a file");
  if (o.metric != "ode-error" && o.metric != "w2" && o.metric != "fd")
    fail("--metric '", o.metric, "' is unknown; valid: fd, w2, ode-error");
  const std::string csv_path = o.csv.empty() ? o.out_dir + "/results.csv" : o.csv;
  const std::string plot_path = o.plot.empty() ? o.out_dir + "/plot.svg" : o.plot;
  SampleJob job;
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
  const ImageDecoder decoder = o.s.cond.image_decoder(model);
  io::check_outputs({{"--out-dir", o.out_dir, true}});
  io::make_dirs(o.out_dir);  // before the files, which may be inside it
  io::check_outputs({{"--out-dir", o.out_dir, true}, {"--csv", csv_path}, {"--plot", plot_path}});
  // Finished cells (and the ode-error reference) are kept in OUT_DIR.parts, so that
  // re-running the command after a kill redoes none of them.
  io::Settings settings = jobs::model_settings(*model);
  std::string all_args;
  for (const auto& [name, args] : args_of) all_args += name + ":" + args + ";";
  settings.insert(settings.end(), {{"samplers", o.samplers},
                                   {"sampler args", all_args},
                                   {"nfe", o.nfe},
                                   {"seeds", seeds_fingerprint(job.seeds)},
                                   {"batch", std::to_string(o.batch)},
                                   {"schedule", o.s.schedule},
                                   {"schedule args", o.s.schedule_args},
                                   {"final", o.s.final},
                                   {"metric", o.metric},
                                   {"features", io::path_fingerprint(o.features == "none" ? "" : o.features)},
                                   {"ref", io::path_fingerprint(o.ref)},
                                   {"ref data", io::path_fingerprint(o.ref_data)},
                                   {"reference", o.reference_sampler + " " + std::to_string(o.reference_steps)}});
  if (o.s.guidance != 1.0 || o.s.cond.fingerprint() != CondOptions().fingerprint())
    settings.push_back({"conditioning", std::to_string(o.s.guidance) + "|" + o.s.cond.fingerprint()});
  {
    std::string files;  // a file's content, not just its name, identifies the cells made with it
    for (const std::string& sch : schedules)
      if (!schedule_file_path(sch).empty())
        files += sch + "=" + jobs::exact_list(grid_sigmas(sch, "", 0, 0, *model, o.s.force)) + ";";
    if (!o.schedules.empty() || !files.empty())
      settings.push_back({"schedules", o.schedules + (files.empty() ? "" : " " + io::hash_text(files))});
  }
  io::ChunkStore store(jobs::chunk_folder(o.out_dir), std::move(settings), o.overwrite, "--out-dir");
  io::remove_stale_temporaries(o.out_dir, "");  // of grids a killed run was writing
  Metric metric(o, model, job, store.memo(), decoder);

  std::vector<eval::SweepCell> cells;
  nlohmann::json grids = nlohmann::json::array();
  Progress progress("compare", static_cast<int64_t>(samplers.size() * schedules.size() * budgets.size()), "cells");
  for (size_t k = 0; k < samplers.size(); ++k) {
    const auto& sampler = samplers[k];
    const FinalStep final = finals[k];
    for (const std::string& schedule : schedules) {
      for (int budget : budgets) {
        eval::SweepCell cell;
        cell.sampler = sampler->name();
        if (!o.schedules.empty()) cell.schedule = schedule;
        cell.nfe_budget = budget;
        const std::string grid = o.out_dir + "/" + grid_file(cell.sampler, cell.schedule, budget);
        char name[64];
        std::snprintf(name, sizeof name, "cell-%03zu-nfe%d", cells.size(), budget);
        try {
          // steps, NFE used, metric, seconds: loaded when an earlier run finished this cell (and its grid).
          torch::Tensor done;
          std::error_code ec;
          if (!decoder.image_shaped() || std::filesystem::exists(grid, ec))
            if (auto kept = store.load(name)) done = io::to_tensor(*kept);
          if (!done.defined()) {
            auto t0 = std::chrono::steady_clock::now();
            const std::vector<double>& own = own_grid[sampler->name()];
            const bool use_own = !own.empty() && sampler->nfe_for(static_cast<int>(own.size()) - 1, final) == budget;
            const int steps = use_own ? static_cast<int>(own.size()) - 1 : sampler->steps_for_nfe(budget, final);
            SampleJob cj = job;
            cj.sigmas =
                use_own ? own : grid_sigmas(schedule, o.s.schedule_args, steps, steps, *model, o.s.force, final);
            cj.final = final;
            SampleResult r = run_sampler(*sampler, model, cj);
            const double value = metric(r.samples);
            if (decoder.image_shaped()) {
              const int64_t shown = std::min<int64_t>(64, r.samples.size(0));
              io::write_png(grid,
                            io::make_grid(decoder.uint8_nhwc(r.samples.narrow(0, 0, shown), o.s.cond.decode_batch)));
            }
            done = torch::tensor({static_cast<double>(steps), static_cast<double>(r.nfe), value, seconds_since(t0)},
                                 torch::kFloat64);
            store.save(name, io::from_tensor(done));
          }
          auto v = done.accessor<double, 1>();
          cell.steps = static_cast<int>(v[0]);
          cell.nfe_used = static_cast<long>(v[1]);
          cell.metric = v[2];
          cell.seconds = v[3];
          if (decoder.image_shaped()) grids.push_back(grid);
        } catch (const Error& e) {
          cell.error = e.what();  // e.g. a budget below the sampler's minimum: reported in the cell
        }
        cells.push_back(cell);
        progress.update(static_cast<int64_t>(cells.size()));
      }
    }
  }
  progress.finish();

  const std::string table = eval::sweep_markdown(cells, o.metric);
  write_text(o.out_dir + "/table.md",
             "# " + metric.label() + "\n\nmodel: " + model->name() + ", " + std::to_string(job.seeds.size()) +
                 " samples from the same seeds in every cell, grid " +
                 (o.schedules.empty() ? o.s.schedule : "per row") + ", final " +
                 (o.s.final.empty() ? "each sampler's default (zero; none for amed)" : o.s.final) + "\n\n" + table);
  write_text(csv_path, eval::sweep_csv(cells, o.metric));
  eval::PlotOptions plot;
  plot.title = o.metric + " vs NFE: " + model->name();
  plot.y_label = metric.label();
  plot.log_x = o.log_x;
  plot.log_y = o.log_y;
  write_text(plot_path, eval::sweep_svg(cells, plot));
  note_resumed(&store);
  store.remove();

  if (o.json) {
    nlohmann::json list = nlohmann::json::array();
    const size_t per_sampler = schedules.size() * budgets.size();
    for (size_t i = 0; i < cells.size(); ++i) {
      const eval::SweepCell& c = cells[i];
      nlohmann::json j = {
          {"sampler", c.sampler}, {"nfe_budget", c.nfe_budget}, {"final", final_step_name(finals[i / per_sampler])}};
      if (!c.schedule.empty()) j["schedule"] = c.schedule;
      if (c.ok())
        j.update({{"steps", c.steps}, {"nfe_used", c.nfe_used}, {"metric", c.metric}, {"seconds", c.seconds}});
      else
        j["error"] = c.error;
      list.push_back(j);
    }
    return print_json(
        {{"command", "compare"},
         {"model", model->name()},
         {"metric", o.metric},
         {"metric_label", metric.label()},
         {"num_samples", job.seeds.size()},
         {"schedule", o.s.schedule},
         {"schedules", schedules},
         {"cells", list},
         {"outputs", {{"table", o.out_dir + "/table.md"}, {"csv", csv_path}, {"plot", plot_path}, {"grids", grids}}},
         {"wall_seconds", seconds_since(start)}});
  }
  std::printf("%s\n\n%s\ntable %s/table.md, CSV %s, plot %s%s\n", metric.label().c_str(), table.c_str(),
              o.out_dir.c_str(), csv_path.c_str(), plot_path.c_str(),
              grids.empty() ? "" : (", grids in " + o.out_dir).c_str());
}

}  // namespace

void register_compare(CLI::App& app) {
  auto* sub =
      app.add_subcommand("compare", "sweep samplers x NFE budgets from the same seeds: table, CSV, SVG plot, grids");
  static Options o;
  o.model.add(*sub);
  o.s.add(*sub, SamplingFlags::kConditioning | SamplingFlags::kGrid);
  sub->add_option("--samplers", o.samplers, "comma-separated sampler names")->capture_default_str();
  sub->add_option("--sampler-args", o.sampler_args,
                  "options of one sampler, NAME:k=v,... (repeatable; e.g. amed:predictor=amed.pt, ddim:eta=0.5)");
  sub->add_option("--nfe", o.nfe, "comma-separated NFE budgets")->capture_default_str();
  sub->add_option("--num", o.num, "samples per cell (seeds 0..num-1)")->capture_default_str();
  sub->add_option("--seeds", o.seeds, "explicit seeds instead of --num, e.g. 0-63");
  sub->add_option("--metric", o.metric, "fd | w2 | ode-error")->capture_default_str();
  sub->add_option("--features", o.features, "feature network for fd, or none (raw samples)")->capture_default_str();
  sub->add_option("--ref", o.ref, "reference statistics .npz (mu, sigma) for fd");
  sub->add_option("--ref-data", o.ref_data, "reference data for fd, or for w2 (sliced) on non-Gaussian models");
  sub->add_option("--reference-steps", o.reference_steps, "steps of the converged reference for ode-error")
      ->capture_default_str();
  sub->add_option("--reference-sampler", o.reference_sampler, "sampler of the ode-error reference")
      ->capture_default_str();
  sub->add_option("--schedules", o.schedules,
                  "a schedule axis: comma-separated grids and files, e.g. karras,kl_optimal,file:g.json (the "
                  "ode-error reference stays on --schedule)");
  sub->add_option("--out-dir", o.out_dir, "directory for table.md, results.csv, plot.svg and grids")->required();
  sub->add_option("--csv", o.csv, "CSV path (default OUT_DIR/results.csv)");
  sub->add_option("--plot", o.plot, "SVG path (default OUT_DIR/plot.svg)");
  sub->add_flag("--log-x", o.log_x, "log-scale NFE axis");
  sub->add_flag("--log-y", o.log_y, "log-scale metric axis");
  sub->add_option("--batch", o.batch, "batch size")->capture_default_str();
  sub->add_flag("--json", o.json, "print one JSON document");
  sub->add_flag("--overwrite", o.overwrite,
                "discard the finished cells of an earlier, unfinished run instead of resuming it");
  set_action(sub, [sub] {
    o.grid_given = o.s.grid_given() || sub->count("--schedules") > 0;
    run(o);
  });
}

}  // namespace scoreflow::cli
