// Checkpoint files: round trip, atomic completion marker, and refusal of torn,
// damaged or foreign checkpoints with a message that says what is wrong.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

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
  return c;
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
  std::ifstream marker(p + ".done");
  int64_t step = 0;
  marker >> step;
  EXPECT_EQ(step, 120) << "the completion marker names the step";
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
