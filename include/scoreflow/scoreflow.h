#pragma once
/// Everything a library user needs, in one include: models (σ-space denoisers, metadata, built-in
/// analytic models), σ grids and samplers, running a sampler over seeds, the Analytic-DPM chain,
/// Γ tables and estimators, evaluation metrics, and reading and writing data (docs/design.md §1).
#include "scoreflow/error.h"

#include "scoreflow/checkpoint.h"
#include "scoreflow/data.h"
#include "scoreflow/image.h"
#include "scoreflow/npy.h"
#include "scoreflow/seeds.h"

#include "scoreflow/args.h"
#include "scoreflow/builtin.h"
#include "scoreflow/conditioning.h"
#include "scoreflow/discrete_chain.h"
#include "scoreflow/empirical.h"
#include "scoreflow/gamma_table.h"
#include "scoreflow/latent.h"
#include "scoreflow/model.h"
#include "scoreflow/prediction.h"
#include "scoreflow/schedule.h"

#include "scoreflow/amed.h"
#include "scoreflow/registry.h"
#include "scoreflow/run.h"
#include "scoreflow/sampler.h"
#include "scoreflow/sigmas.h"

#include "scoreflow/analytic_dpm.h"
#include "scoreflow/gamma_estimation.h"
#include "scoreflow/nll.h"

#include "scoreflow/features.h"
#include "scoreflow/metrics.h"
#include "scoreflow/score_matching.h"
#include "scoreflow/wbound.h"
