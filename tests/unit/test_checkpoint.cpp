// Checkpoint files: round trip, atomic completion marker, and refusal of torn,
// damaged or foreign checkpoints with a message that says what is wrong.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <zlib.h>

#include "helpers.h"
#include "trace/checkpoint.h"

namespace bs {
namespace {

using test::TempDir;

Checkpoint sample() {
  Checkpoint c;
  c.fingerprint = {{"study", "s"}, {"batch_per_rank", "[16, 48]"}, {"optimizer", "sgd lr 0.1"}};
  TrainState& s = c.state;
  s.step = 120;
  s.eval_rows = 4;
  s.wall_s = 12.5;
  s.best_val_acc = 0.81;
  s.target_step = 100;
  s.last_eval.step = 120;
  s.last_eval.val_acc = 0.8;
  s.params = {1.5f, -2.25f, 3.0f};
  s.opt_steps = 120;
  s.opt_bufs = {{0.5f, 0.25f, 0.125f}, {1.f, 2.f, 3.f}};
  s.ema_tr = 30.0;
  s.ema_g2 = 0.5;
  s.ema_beta_pow = 0.25;
  // BatchNorm running mean and variance, and its batch counter.
  s.buffers = {0.125, -0.0078125, 1.0000001192092896, 0.97, 4096.0};
  return c;
}

std::string read_bytes(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
}

// The file's layout: 8 bytes of magic and version, the payload size (8), its
// CRC-32 (4), the payload.
constexpr size_t kHead = 8 + 8 + 4;

// Replaces the payload, with a header that matches it (size and CRC), so only
// the payload's contents can be refused.
void rewrite_payload(const std::string& p, const std::string& payload) {
  std::string file = read_bytes(p).substr(0, 8);
  const uint64_t size = payload.size();
  const auto crc = static_cast<uint32_t>(
      crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(payload.data()), static_cast<uInt>(size)));
  file.append(reinterpret_cast<const char*>(&size), sizeof size);
  file.append(reinterpret_cast<const char*>(&crc), sizeof crc);
  write_bytes(p, file + payload);
}

TEST(Checkpoint, RoundTripsEveryField) {
  TempDir d;
  const std::string p = d.file("r.ckpt");
  write_checkpoint(p, sample());
  EXPECT_TRUE(checkpoint_exists(p));
  EXPECT_FALSE(std::filesystem::exists(p + ".tmp")) << "the temporary file is renamed away";
  Checkpoint c = read_checkpoint(p);
  const TrainState& s = c.state;
  EXPECT_EQ(c.fingerprint, sample().fingerprint);
  EXPECT_EQ(s.step, 120);
  EXPECT_EQ(s.eval_rows, 4);
  EXPECT_EQ(s.wall_s, 12.5);
  EXPECT_EQ(s.best_val_acc, 0.81);
  EXPECT_EQ(s.target_step, 100);
  EXPECT_EQ(s.last_eval.val_acc, 0.8);
  EXPECT_EQ(s.params, sample().state.params);
  EXPECT_EQ(s.opt_steps, 120);
  EXPECT_EQ(s.opt_bufs, sample().state.opt_bufs);
  EXPECT_EQ(s.ema_tr, 30.0);
  EXPECT_EQ(s.ema_g2, 0.5);
  EXPECT_EQ(s.ema_beta_pow, 0.25);
  EXPECT_EQ(s.buffers, sample().state.buffers) << "the model's buffers, bit for bit";
  std::ifstream marker(p + ".done");
  int64_t step = 0;
  marker >> step;
  EXPECT_EQ(step, 120) << "the completion marker names the step";
}

TEST(Checkpoint, RoundTripsAModelWithoutBuffers) {
  TempDir d;
  const std::string p = d.file("r.ckpt");
  Checkpoint c = sample();
  c.state.buffers.clear();
  write_checkpoint(p, c);
  const TrainState s = read_checkpoint(p).state;
  EXPECT_TRUE(s.buffers.empty());
  EXPECT_EQ(s.params, c.state.params) << "the fields before the buffers are unchanged";
  EXPECT_EQ(s.ema_beta_pow, 0.25);
}

TEST(Checkpoint, WithoutCompletionMarkerItDoesNotExist) {
  TempDir d;
  const std::string p = d.file("r.ckpt");
  write_checkpoint(p, sample());
  std::filesystem::remove(p + ".done");
  EXPECT_FALSE(checkpoint_exists(p));
  try {
    read_checkpoint(p);
    FAIL() << "read a checkpoint without its completion marker";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("no completion marker"), std::string::npos) << e.what();
  }
}

void expect_refused(const std::string& p, const std::string& words) {
  try {
    read_checkpoint(p);
    FAIL() << "accepted a bad checkpoint, expected: " << words;
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << "the message names the file";
  }
}

TEST(Checkpoint, TornFileIsRefused) {
  TempDir d;
  const std::string p = d.file("r.ckpt");
  write_checkpoint(p, sample());
  std::filesystem::resize_file(p, std::filesystem::file_size(p) - 7);
  expect_refused(p, "torn checkpoint");
}

TEST(Checkpoint, FileCutShortOfItsHeaderIsRefused) {
  TempDir d;
  const std::string p = d.file("r.ckpt");
  write_checkpoint(p, sample());
  std::filesystem::resize_file(p, 11);
  expect_refused(p, "not a batchscope checkpoint");
  std::filesystem::resize_file(p, 0);
  expect_refused(p, "not a batchscope checkpoint");
}

TEST(Checkpoint, OlderFormatVersionIsRefusedNamingBothVersions) {
  TempDir d;
  const std::string p = d.file("r.ckpt");
  write_checkpoint(p, sample());
  std::string bytes = read_bytes(p);
  ASSERT_EQ(bytes.substr(0, 8), "BSCKPT03");
  bytes[7] = '2';
  write_bytes(p, bytes);
  expect_refused(p, "checkpoint format version 02, this batchscope reads version 03");
}

// A payload laid out as before the buffers existed, under the current header
// (size and CRC match it): refused as short, not read past its end.
TEST(Checkpoint, PayloadWithoutTheBuffersIsRefused) {
  TempDir d;
  const std::string p = d.file("r.ckpt");
  Checkpoint c = sample();
  c.state.buffers.clear();
  write_checkpoint(p, c);
  const std::string payload = read_bytes(p).substr(kHead);
  rewrite_payload(p, payload.substr(0, payload.size() - sizeof(uint64_t)));  // drop the count
  expect_refused(p, "checkpoint payload ends early");
}

TEST(Checkpoint, BufferCountBeyondThePayloadIsRefused) {
  TempDir d;
  const std::string p = d.file("r.ckpt");
  write_checkpoint(p, sample());
  std::string payload = read_bytes(p).substr(kHead);
  // The buffers are last: their count sits 5 doubles before the end. Claim
  // 2^61 of them (a byte count that wraps around 64 bits).
  const uint64_t huge = uint64_t{1} << 61;
  std::memcpy(payload.data() + payload.size() - 5 * sizeof(double) - sizeof(uint64_t), &huge, sizeof huge);
  rewrite_payload(p, payload);
  expect_refused(p, "checkpoint payload ends early");
}

TEST(Checkpoint, TrailingBytesAreRefused) {
  TempDir d;
  const std::string p = d.file("r.ckpt");
  write_checkpoint(p, sample());
  rewrite_payload(p, read_bytes(p).substr(kHead) + std::string(8, '\0'));
  expect_refused(p, "trailing bytes");
}

TEST(Checkpoint, FlippedByteIsRefusedByTheChecksum) {
  TempDir d;
  const std::string p = d.file("r.ckpt");
  write_checkpoint(p, sample());
  std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(-5, std::ios::end);
  char c = 0;
  f.read(&c, 1);
  f.seekp(-5, std::ios::end);
  c = static_cast<char>(c ^ 0x10);
  f.write(&c, 1);
  f.close();
  expect_refused(p, "checksum mismatch");
}

TEST(Checkpoint, NotACheckpointIsRefused) {
  TempDir d;
  const std::string p = d.file("r.ckpt");
  std::ofstream(p) << "hello, world: definitely not a checkpoint file";
  std::ofstream(p + ".done") << "1\n";
  expect_refused(p, "not a batchscope checkpoint");
}

TEST(Checkpoint, FingerprintMismatchNamesEveryDifference) {
  Fingerprint saved = sample().fingerprint;
  Fingerprint now = saved;
  EXPECT_NO_THROW(require_same("x.ckpt", saved, now));
  now["batch_per_rank"] = "[32, 32]";
  now["optimizer"] = "sgd lr 0.2";
  try {
    require_same("x.ckpt", saved, now);
    FAIL() << "accepted a checkpoint from a different layout";
  } catch (const CheckpointError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("batch_per_rank: checkpoint has [16, 48], the study now has [32, 32]"), std::string::npos) << m;
    EXPECT_NE(m.find("optimizer: checkpoint has sgd lr 0.1, the study now has sgd lr 0.2"), std::string::npos) << m;
    EXPECT_EQ(m.find("study:"), std::string::npos) << "only differing keys are listed: " << m;
  }
}

TEST(Checkpoint, ChangedModelFileIsNamedWithBothDigests) {
  Fingerprint saved = sample().fingerprint;
  saved["model.file"] = "/data/net.pt (1048576 bytes, fnv1a64 00112233445566aa)";
  Fingerprint now = saved;
  now["model.file"] = "/data/net.pt (1048580 bytes, fnv1a64 99887766554433bb)";
  try {
    require_same("x.ckpt", saved, now);
    FAIL() << "accepted a checkpoint of a different model file";
  } catch (const CheckpointError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("x.ckpt: checkpoint was written for a different study"), std::string::npos) << m;
    EXPECT_NE(m.find("\n  model.file: checkpoint has /data/net.pt (1048576 bytes, fnv1a64 00112233445566aa), "
                     "the study now has /data/net.pt (1048580 bytes, fnv1a64 99887766554433bb)"),
              std::string::npos)
        << m;
    EXPECT_EQ(m.find("optimizer:"), std::string::npos) << "only the file is listed: " << m;
  }
}

TEST(Checkpoint, FileKeyAbsentFromTheCheckpointIsListed) {
  Fingerprint saved = sample().fingerprint;
  Fingerprint now = saved;
  now["data.file"] = "/data/set.h5 (4096 bytes, fnv1a64 0123456789abcdef)";
  try {
    require_same("x.ckpt", saved, now);
    FAIL() << "accepted a checkpoint without the data file's digest";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("data.file: checkpoint has (absent), the study now has /data/set.h5"),
              std::string::npos)
        << e.what();
  }
}

// A checkpoint that cannot be written is an output problem (exit 5), not a
// refused checkpoint (exit 6); the message names the file.
void expect_unwritable(const std::string& p, const std::string& words) {
  try {
    write_checkpoint(p, sample());
    FAIL() << "wrote a checkpoint that cannot be written, expected: " << words;
  } catch (const OutputError& e) {
    EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'output' folder"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(checkpoint_exists(p)) << "no completion marker for a checkpoint never written";
}

TEST(Checkpoint, MissingFolderIsAnOutputError) {
  TempDir d;
  const std::string p = d.file("gone/r.ckpt");
  expect_unwritable(p, "cannot write checkpoint " + p + ".tmp");
}

// A folder where the checkpoint should go: its temporary file is written, the
// rename onto the folder fails (even for root).
TEST(Checkpoint, FailedRenameIsAnOutputError) {
  TempDir d;
  const std::string p = d.file("r.ckpt");
  std::filesystem::create_directories(p + "/in_the_way");
  expect_unwritable(p, "cannot rename checkpoint " + p + ".tmp to " + p);
}

TEST(Checkpoint, RewritingReplacesTheOldOne) {
  TempDir d;
  const std::string p = d.file("r.ckpt");
  write_checkpoint(p, sample());
  Checkpoint later = sample();
  later.state.step = 240;
  write_checkpoint(p, later);
  EXPECT_EQ(read_checkpoint(p).state.step, 240);
  remove_checkpoint(p);
  EXPECT_FALSE(checkpoint_exists(p));
  EXPECT_FALSE(std::filesystem::exists(p));
}

}  // namespace
}  // namespace bs
