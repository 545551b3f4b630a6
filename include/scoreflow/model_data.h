#pragma once
/// A model's view of a dataset file (models/metadata.cpp): what every dataset-reading command opens
/// a dataset with for a model.
#include "scoreflow/data.h"
#include "scoreflow/model.h"

namespace scoreflow {

/// The model's shape, data range and its metadata field `data_prep` (validated by
/// resolve_metadata), as options for io::open_dataset.
io::DatasetOptions dataset_options(const ModelMetadata& meta);

}  // namespace scoreflow
