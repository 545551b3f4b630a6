// A sampler × NFE (× σ grid) sweep from the same seeds, resumable cell by cell
// (scoreflow/compare.h); `scoreflow compare` only reads its flags into CompareOptions.
#include "scoreflow/compare.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "eval/sweep.h"
#include "io/fsutil.h"
#include "scoreflow/amed.h"
#include "scoreflow/error.h"
#include "scoreflow/image.h"
#include "scoreflow/jobs.h"
#include "scoreflow/jobs/clock.h"
#include "scoreflow/registry.h"
#include "scoreflow/schedule_file.h"
#include "scoreflow/sigmas.h"

namespace scoreflow::jobs {
namespace {

/// "grid_euler_nfe5.png", with a schedule axis "grid_euler_kl_optimal_nfe5.png" (other characters → '_').
std::string grid_file(const std::string& sampler, const std::string& schedule, int budget) {
  std::string tag = schedule;
  for (char& ch : tag)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return "grid_" + sampler + (tag.empty() ? "" : "_" + tag) + "_nfe" + std::to_string(budget) + ".png";
}

/// A named grid or schedule file with its own (or `default_steps`) steps, as the axis and the
/// resume record see it.
std::vector<double> named_grid(const std::string& schedule, const std::string& schedule_args, int steps,
                               int default_steps, const Model& model, bool force) {
  try {
    return resolve_sigmas(schedule, steps, default_steps, model, KeyValueArgs(schedule_args, "schedule arg"), force,
                          FinalStep::Zero);
  } catch (const ScheduleMismatch& e) {
    fail(e.what(), " (", Field{"force"}, " uses it anyway)");
  }
}

std::string arg_of(const CompareOptions& o, const std::string& name) {
  auto it = o.sampler_args.find(name);
  return it == o.sampler_args.end() ? std::string() : it->second;
}

}  // namespace

CompareResult run_compare(std::shared_ptr<const Model> model, const ImageDecoder& decoder, const CompareOptions& o) {
  if (o.samplers.empty()) fail(Field{"samplers"}, " is empty; give e.g. euler,heun");
  for (const auto& [name, args] : o.sampler_args)
    if (std::find(o.samplers.begin(), o.samplers.end(), name) == o.samplers.end())
      fail(Field{"sampler_args"}, " names '", name, "', which is not in ", Field{"samplers"}, " (",
           join(o.samplers, ","), ")");
  std::vector<std::unique_ptr<Sampler>> samplers;
  std::vector<FinalStep> finals;                        // per sampler: `final`, or its own default
  std::map<std::string, std::vector<double>> own_grid;  // AMED predictors' grids, used when no schedule is given
  for (const auto& n : o.samplers) {
    samplers.push_back(make_sampler(n, arg_of(o, n)));  // bad names/args fail before any work
    finals.push_back(choose_final(o.final, *samplers.back(), arg_of(o, n)));
    if (!o.schedule_given) own_grid[samplers.back()->name()] = amed_trained_sigmas(n, arg_of(o, n));
  }
  for (int v : o.nfe)
    if (v < 0) fail(Field{"nfe"}, " values must be non-negative integers, got ", v);
  if (o.out_dir.empty()) fail("give ", Field{"out_dir"}, " for the table, CSV, plot and grids");
  // The schedule axis, and any schedule file: each grid name is checked by building it once, each
  // file against the model, before any sampling.
  const bool axis = !o.schedules.empty();
  const std::vector<std::string> schedules = axis ? o.schedules : std::vector<std::string>{o.schedule};
  if (axis && !o.schedule_args.empty())
    fail(Field{"schedule_args"}, " applies to ", Field{"schedule"}, " alone; the ", Field{"schedules"},
         " grids take their defaults (or are files)");
  for (const std::string& s : schedules)
    if (axis || !schedule_file_path(s).empty()) named_grid(s, "", 0, 10, *model, o.force);
  const eval::SampleMetricOptions& mo = o.metric;
  if (mo.metric == "ode-error" && !schedule_file_path(o.schedule).empty())
    fail(Field{"metric"}, " ode-error needs a named ", Field{"schedule"}, " for its ", mo.reference_steps,
         "-step reference, not a file");
  eval::check_sample_metric_name(mo.metric);
  CompareResult res;
  res.schedules = schedules;
  res.num_samples = static_cast<int64_t>(o.job.seeds.size());
  if (res.num_samples < 2) fail(Field{"seeds"}, " must give at least 2 samples, got ", res.num_samples);
  res.table_path = o.out_dir + "/table.md";
  res.csv_path = o.csv.empty() ? o.out_dir + "/results.csv" : o.csv;
  res.plot_path = o.plot.empty() ? o.out_dir + "/plot.svg" : o.plot;
  io::check_outputs({{o.out_dir_name, o.out_dir, true}});
  io::make_dirs(o.out_dir);  // before the files, which may be inside it
  io::check_outputs({{o.out_dir_name, o.out_dir, true}, {o.csv_name, res.csv_path}, {o.plot_name, res.plot_path}});
  // Finished cells (and the ode-error reference) are kept in OUT_DIR.parts, so that re-running
  // after a kill redoes none of them.
  io::Settings settings = model_settings(*model);
  std::string all_args, samplers_text = join(o.samplers, ","), nfe_text;
  std::map<std::string, std::string> args_of;  // every sampler, by name ("" without args), as records always held it
  for (const std::string& n : o.samplers) args_of[n] = arg_of(o, n);
  for (const auto& [name, args] : args_of) all_args += name + ":" + args + ";";
  for (int v : o.nfe) nfe_text += (nfe_text.empty() ? "" : ",") + std::to_string(v);
  settings.insert(settings.end(), {{"samplers", samplers_text},
                                   {"sampler args", all_args},
                                   {"nfe", nfe_text},
                                   {"seeds", seeds_fingerprint(o.job.seeds)},
                                   {"batch", std::to_string(o.job.batch)},
                                   {"schedule", o.schedule},
                                   {"schedule args", o.schedule_args},
                                   {"final", o.final},
                                   {"metric", mo.metric},
                                   {"features", io::path_fingerprint(mo.features == "none" ? "" : mo.features)},
                                   {"ref", io::path_fingerprint(mo.ref)},
                                   {"ref data", io::path_fingerprint(mo.ref_data)},
                                   {"reference", mo.reference_sampler + " " + std::to_string(mo.reference_steps)}});
  settings.insert(settings.end(), o.extra_settings.begin(), o.extra_settings.end());
  {
    std::string files;  // a file's content, not just its name, identifies the cells made with it
    for (const std::string& sch : schedules)
      if (!schedule_file_path(sch).empty())
        files += sch + "=" + exact_list(named_grid(sch, "", 0, 0, *model, o.force)) + ";";
    if (axis || !files.empty())
      settings.push_back({"schedules", join(o.schedules, ",") + (files.empty() ? "" : " " + io::hash_text(files))});
  }
  io::ChunkStore store(chunk_folder(o.out_dir), std::move(settings), o.overwrite, o.out_dir_name);
  io::remove_stale_temporaries(o.out_dir, "");  // of grids a killed run was writing
  SampleJob job = o.job;
  job.device = model->device();
  std::unique_ptr<eval::SampleMetric> metric = eval::make_sample_metric(mo, model, decoder);
  if (metric->needs_reference_samples()) {
    auto sampler = make_sampler(mo.reference_sampler);
    GridChoice choice;
    choice.schedule = o.schedule;
    choice.schedule_args = o.schedule_args;
    choice.schedule_given = true;
    choice.steps = mo.reference_steps;
    choice.force = o.force;
    SampleJob ref = job;
    ref.sigmas = choose_grid(choice, *model, *sampler, "", FinalStep::Zero).sigmas;
    ref.final = FinalStep::Zero;
    metric->set_reference_samples(
        io::memoize(store.memo(), "reference", [&] { return run_sampler(*sampler, model, ref).samples; }));
  }
  res.label = metric->label();

  const int64_t total = static_cast<int64_t>(samplers.size() * schedules.size() * o.nfe.size());
  for (size_t k = 0; k < samplers.size(); ++k) {
    const Sampler& sampler = *samplers[k];
    const FinalStep final = finals[k];
    for (const std::string& schedule : schedules) {
      for (int budget : o.nfe) {
        eval::SweepCell cell;
        cell.sampler = sampler.name();
        if (axis) cell.schedule = schedule;
        cell.nfe_budget = budget;
        const std::string grid = o.out_dir + "/" + grid_file(cell.sampler, cell.schedule, budget);
        char name[64];
        std::snprintf(name, sizeof name, "cell-%03zu-nfe%d", res.cells.size(), budget);
        try {
          // steps, NFE used, metric, seconds: loaded when an earlier run finished this cell (and its grid).
          torch::Tensor done;
          std::error_code ec;
          if (!decoder.image_shaped() || std::filesystem::exists(grid, ec))
            if (auto kept = store.load(name)) done = io::to_tensor(*kept);
          if (!done.defined()) {
            auto t0 = std::chrono::steady_clock::now();
            const std::vector<double>& own = own_grid[sampler.name()];
            const bool use_own = !own.empty() && sampler.nfe_for(static_cast<int>(own.size()) - 1, final) == budget;
            SampleJob cj = job;
            int steps = static_cast<int>(own.size()) - 1;
            if (use_own) {
              cj.sigmas = own;
            } else {
              GridChoice choice;
              choice.schedule = schedule;
              choice.schedule_args = o.schedule_args;
              choice.schedule_given = true;
              choice.nfe = budget;
              choice.force = o.force;
              const ChosenGrid chosen = choose_grid(choice, *model, sampler, arg_of(o, cell.sampler), final);
              cj.sigmas = chosen.sigmas;
              steps = chosen.nfe_steps;
            }
            cj.final = final;
            SampleResult r = run_sampler(sampler, model, cj);
            const double value = metric->value(r.samples);
            if (decoder.image_shaped()) {
              const int64_t shown = std::min<int64_t>(64, r.samples.size(0));
              io::write_png(grid, io::make_grid(decoder.uint8_nhwc(r.samples.narrow(0, 0, shown), mo.decode_batch)));
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
          if (decoder.image_shaped()) res.grids.push_back(grid);
        } catch (const Error& e) {
          cell.error = e.what();  // e.g. a budget below the sampler's minimum: reported in the cell
        }
        res.cells.push_back(cell);
        res.finals.push_back(final);
        if (o.on_cell) o.on_cell(static_cast<int64_t>(res.cells.size()), total);
      }
    }
  }

  res.table = eval::sweep_markdown(res.cells, mo.metric);
  io::write_file_atomic(res.table_path,
                        "# " + res.label + "\n\nmodel: " + model->name() + ", " + std::to_string(res.num_samples) +
                            " samples from the same seeds in every cell, grid " + (axis ? "per row" : o.schedule) +
                            ", final " + (o.final.empty() ? "each sampler's default (zero; none for amed)" : o.final) +
                            "\n\n" + res.table);
  io::write_file_atomic(res.csv_path, eval::sweep_csv(res.cells, mo.metric));
  eval::PlotOptions plot;
  plot.title = mo.metric + " vs NFE: " + model->name();
  plot.y_label = res.label;
  plot.log_x = o.log_x;
  plot.log_y = o.log_y;
  io::write_file_atomic(res.plot_path, eval::sweep_svg(res.cells, plot));
  res.resumed = store.loaded();
  note_resumed(store.dir(), store.loaded(), "chunks");
  store.remove();
  return res;
}

std::map<std::string, std::string> parse_named_sampler_args(const std::vector<std::string>& items) {
  std::map<std::string, std::string> args;
  for (const std::string& item : items) {
    const size_t colon = item.find(':');
    if (colon == std::string::npos || colon == 0)
      fail(Field{"sampler_args"}, " '", item, "' must be NAME:k=v,... (e.g. amed:predictor=amed.pt)");
    args[item.substr(0, colon)] = item.substr(colon + 1);
  }
  return args;
}

std::vector<int> nfe_budgets(const std::vector<double>& values) {
  std::vector<int> budgets;
  for (double v : values) {
    if (v < 0 || v != std::floor(v)) fail(Field{"nfe"}, " values must be non-negative integers, got ", v);
    budgets.push_back(static_cast<int>(v));
  }
  return budgets;
}

nlohmann::json to_json(const CompareResult& r, const CompareOptions& o) {
  nlohmann::json cells = nlohmann::json::array();
  for (size_t i = 0; i < r.cells.size(); ++i) {
    const eval::SweepCell& cell = r.cells[i];
    nlohmann::json j = {
        {"sampler", cell.sampler}, {"nfe_budget", cell.nfe_budget}, {"final", final_step_name(r.finals[i])}};
    if (!cell.schedule.empty()) j["schedule"] = cell.schedule;
    if (cell.ok())
      j.update(
          {{"steps", cell.steps}, {"nfe_used", cell.nfe_used}, {"metric", cell.metric}, {"seconds", cell.seconds}});
    else
      j["error"] = cell.error;
    cells.push_back(j);
  }
  return {{"command", "compare"},
          {"metric", o.metric.metric},
          {"metric_label", r.label},
          {"num_samples", r.num_samples},
          {"schedule", o.schedule},
          {"schedules", r.schedules},
          {"cells", cells},
          {"outputs", {{"table", r.table_path}, {"csv", r.csv_path}, {"plot", r.plot_path}, {"grids", r.grids}}}};
}

std::string compare_text(const CompareResult& r, const CompareOptions& o) {
  return r.label + "\n\n" + r.table + "\ntable " + r.table_path + ", CSV " + r.csv_path + ", plot " + r.plot_path +
         (r.grids.empty() ? "" : ", grids in " + o.out_dir) + "\n";
}

}  // namespace scoreflow::jobs
