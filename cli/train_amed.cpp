// scoreflow train-amed: trains the AMED predictor for one model, grid and student (the job is the
// library's: jobs::train_amed_job); amed-table: writes a table-mode predictor's per-step (r, s, c, a) as JSON.
#include <cstdio>
#include <memory>
#include <string>

#include "cli/common.h"
#include "cli/sampling_flags.h"
#include "scoreflow/amed_job.h"
#include "scoreflow/error.h"

namespace scoreflow::cli {
namespace {

void train(jobs::AmedJobOptions o, const SamplingFlags& flags, const ModelOptions& model_options, bool json) {
  const auto start = std::chrono::steady_clock::now();
  o.schedule = flags.schedule;
  o.schedule_args = flags.schedule_args;
  o.force = flags.force;
  try {
    o.final = parse_final_step(flags.final);
  } catch (const Error&) {
    fail("--final: unknown value '", flags.final, "'; valid: zero, none, denoise");
  }
  o.check();
  auto model = model_options.open();
  // Conditioning of trajectory i (training and validation count from 0), checked here.
  o.conditioning = flags.conditioning(*model, std::vector<uint64_t>(static_cast<size_t>(o.trajectories())));
  std::unique_ptr<Progress> progress;
  o.on_note = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
  o.on_progress = [&](int64_t done, int64_t total, const std::string& extra) {
    if (!progress) progress = std::make_unique<Progress>("train-amed", total, "steps");
    progress->update(done, extra);
  };
  const jobs::AmedJobResult r = jobs::train_amed_job(model, o);
  if (progress) progress->finish();
  const jobs::AmedRun& kept = r.runs[r.kept];
  std::fprintf(stderr, "train-amed: wrote %s (loss %.6g -> %.6g) in %.1fs\n", o.out.c_str(), kept.first_loss,
               kept.last_loss, seconds_since(start));
  if (!json) return;
  nlohmann::json doc = jobs::to_json(r, o);
  doc.update({{"model", model->name()}, {"wall_seconds", seconds_since(start)}});
  print_json(doc);
}

}  // namespace

void register_train_amed(CLI::App& app) {
  auto* sub = app.add_subcommand("train-amed", "train an AMED predictor (Zhou et al. 2024) for a model and sigma grid");
  static jobs::AmedJobOptions o;
  static ModelOptions model;
  static SamplingFlags flags;
  static bool json = false;
  model.add(*sub);
  flags.schedule = "";  // the student's default grid (jobs::AmedJobOptions::schedule)
  flags.final = "none";
  flags.guidance_help = "classifier-free guidance weight w of teacher and student";
  flags.schedule_help =
      "sigma grid (scoreflow list schedules, or file:PATH.json; default vp_time_uniform for amed, karras for "
      "plugins; sample with the same)";
  flags.final_help =
      "the sampling convention trained for and recorded: none (the paper's: the grid ends at sigma_min), denoise "
      "(then D(x, sigma_min), +1 NFE) or zero (the grid ends in 0, its last step not taken)";
  flags.add(*sub, SamplingFlags::kConditioning | SamplingFlags::kGrid);
  sub->add_option("--student", o.student, "amed (AMED-Solver) or a plugin base: euler, ipndm, dpmpp_2m")
      ->capture_default_str();
  sub->add_option("--teacher", o.teacher, "heun (for amed, euler), ipndm (for ipndm), dpmpp_2m (for dpmpp_2m)")
      ->capture_default_str();
  sub->add_option("--steps", o.steps,
                  "grid steps as in `sample --steps` (NFE 2 steps with --final none, 2(steps-1) with zero; minus 1 "
                  "with --afs; default 3, 4 with --final zero, or the schedule file's)");
  sub->add_flag("--afs", o.afs, "analytical first step (saves one NFE)");
  sub->add_option("--M", o.M, "teacher points inserted per interval (default 1 for heun, 2 otherwise)");
  sub->add_option("--num-trajectories", o.num_trajectories, "teacher trajectories (fresh noise)")
      ->capture_default_str();
  sub->add_option("--batch", o.batch, "trajectories per batch")->capture_default_str();
  sub->add_option("--lr", o.lr, "Adam learning rate")->capture_default_str();
  sub->add_option("--scale-dir", o.scale_dir, "c in [1 - scale_dir, 1 + scale_dir]")->capture_default_str();
  sub->add_option("--scale-time", o.scale_time,
                  "a in [1 - scale_time, 1 + scale_time] (default 0 for amed, 0.2 for plugins)");
  sub->add_option("--seed", o.seed, "seed for the predictor's initialisation and the training noise")
      ->capture_default_str();
  sub->add_option("--restarts", o.restarts,
                  "train with seeds seed, seed+1, ... and keep the run with the lowest end-to-end error against "
                  "the teacher (training can settle in a poor basin depending on the seed)")
      ->capture_default_str();
  sub->add_option("--validate", o.validate,
                  "fresh trajectories for the end-to-end check: the student solving the whole grid vs the teacher "
                  "(default 1024 with --restarts > 1, else none)");
  sub->add_option("--out", o.out, "predictor file to write (amed.pt)")->required();
  sub->add_option("--table", o.table, "also write the per-step table as JSON (models without features)");
  sub->add_option("--log", o.log, "CSV of the loss per optimiser step (seed,batch,step,sigma,sigma_next,loss)");
  sub->add_flag("--json", json, "print a JSON summary on stdout");
  sub->add_flag("--overwrite", o.overwrite,
                "with --restarts: discard the finished restarts of an unfinished run with other settings (OUT.parts)");
  o.out_field = "--out";
  set_action(sub, [] { train(o, flags, model, json); });

  auto* tab = app.add_subcommand("amed-table", "write a table-mode AMED predictor's per-step (r, s, c, a) as JSON");
  static std::string predictor, out;
  tab->add_option("--predictor", predictor, "predictor file from train-amed")->required();
  tab->add_option("--out", out, "JSON table to write")->required();
  set_action(tab, [] { jobs::write_amed_table(predictor, out, "--out"); });
}

}  // namespace scoreflow::cli
