#pragma once
// A content digest of a file, so that a checkpoint can refuse to continue a
// run whose model or data file has changed since (app/run_actions.cpp puts it
// in the checkpoint's fingerprint). Torch-free and MPI-free.
#include <cstdint>
#include <string>

#include "util/errors.h"  // DataError

namespace bs {

// 64-bit FNV-1a over `size` bytes, continuing from `hash` (start with
// kFnv1a64Basis). Not cryptographic: it tells a changed file from the same
// one, not a forged file from a genuine one.
constexpr uint64_t kFnv1a64Basis = 0xcbf29ce484222325ULL;
uint64_t fnv1a64(const void* data, size_t size, uint64_t hash = kFnv1a64Basis);

// "<size> bytes, fnv1a64 <16 lowercase hex digits>" of the file's bytes, read
// in large blocks. Throws DataError naming the file when it cannot be read.
std::string file_digest(const std::string& path);

}  // namespace bs
