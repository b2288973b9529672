#pragma once
// Starting or continuing a study: world rank 0 alone looks at the output
// folder and decides, for every run, whether it starts fresh, continues from
// its checkpoint or is already done. Every rank learns that decision, or the
// refusal, before any training, so all of them stop together when something
// is wrong.
#include <string>
#include <vector>

#include "comm/mpi_env.h"
#include "config/study.h"
#include "trace/checkpoint.h"

namespace bs {

struct RunOptions;  // app/study_runner.h

enum class RunAction : char { Fresh = 'F', Resume = 'R', Done = 'D' };

// <output>/runs/<run>.h5
std::string run_path(const Study& study, const RunSpec& run);

// What a checkpoint records of its study and run, and resume compares. Run
// files and checkpoints already store it: keep its text byte for byte.
// It includes file_fingerprint(study), so it reads the model and data files.
Fingerprint fingerprint(const Study& study, const RunSpec& run);
// The same with the study's file_fingerprint taken once for several runs.
Fingerprint fingerprint(const Study& study, const RunSpec& run, const Fingerprint& files);

// The files a study reads whose contents a resumed run must find unchanged,
// each as "path (digest)": "model.file" for a torchscript model, "data.file"
// for an hdf5 data set (util/digest.h). Reads every byte of them; throws
// DataError naming a file it cannot read.
Fingerprint file_fingerprint(const Study& study);

// Rank 0 only. Creates the output folders, decides every run's action and
// writes <output>/study.yaml. Throws OutputError (a run file would be lost, or
// the folder cannot be used), CheckpointError (a checkpoint is refused) or
// DataError (a model or data file cannot be read for its digest).
std::vector<RunAction> plan_run_actions(const Study& study, const RunOptions& options);

// Collective over the world: rank 0 plans, every rank returns its actions or
// throws the same typed error with the same message.
std::vector<RunAction> agree_run_actions(const Study& study, const RunOptions& options, const MpiEnv& env);

}  // namespace bs
