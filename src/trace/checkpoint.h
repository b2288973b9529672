#pragma once
// Per-run checkpoints: <output>/checkpoints/<run>.ckpt plus <run>.ckpt.done.
// Written atomically (temporary file, fsync, rename, then the completion
// marker); the file carries a format version, its payload size and CRC-32, so
// a torn, damaged or older-format checkpoint is refused instead of silently
// continuing a wrong run.
#include <map>
#include <string>

#include "train/train_state.h"
#include "util/errors.h"  // CheckpointError, OutputError

namespace bs {

// What a checkpoint must agree on with the study that resumes it.
using Fingerprint = std::map<std::string, std::string>;

struct Checkpoint {
  Fingerprint fingerprint;
  TrainState state;
};

std::string checkpoint_path(const std::string& output, const std::string& run);
// Throws OutputError naming the file when it cannot be written or renamed.
void write_checkpoint(const std::string& path, const Checkpoint& ckpt);
// Throws CheckpointError naming the file and what is wrong.
Checkpoint read_checkpoint(const std::string& path);
bool checkpoint_exists(const std::string& path);  // the completion marker is there
// Throws CheckpointError listing every key that differs.
void require_same(const std::string& path, const Fingerprint& saved, const Fingerprint& now);
void remove_checkpoint(const std::string& path);

}  // namespace bs
