// plan_devices: which device each rank trains on and which backend its group
// reduces with, from what the ranks reported. No GPU needed: the ranks are
// described, not probed.
#include <functional>
#include <stdexcept>

#include <gtest/gtest.h>

#include "placement/device_plan.h"
#include "util/errors.h"

namespace bs {
namespace {

Study study(const std::string& device, const std::string& comm) {
  Study st;
  st.file = "study.yaml";
  st.device = device;
  st.comm = comm;
  return st;
}

// Groups of the given sizes over consecutive world ranks.
Layout layout(const std::vector<int>& sizes) {
  Layout l;
  int first = 0;
  for (size_t g = 0; g < sizes.size(); ++g) {
    GroupPlan p;
    p.index = static_cast<int>(g);
    p.first_rank = first;
    p.size = sizes[g];
    first += sizes[g];
    l.groups.push_back(p);
  }
  l.world_size = first;
  return l;
}

// `per_host` ranks on each host, each host with `gpus` GPUs named by host and index.
std::vector<RankDevice> ranks(int hosts, int per_host, int gpus) {
  std::vector<RankDevice> out;
  for (int h = 0; h < hosts; ++h)
    for (int l = 0; l < per_host; ++l) {
      RankDevice d;
      d.host = "node" + std::to_string(h);
      d.local_rank = l;
      d.gpus = gpus;
      if (gpus > 0) {
        d.gpu_name = "NVIDIA H100";
        d.gpu_uuid = "GPU-" + d.host + "-" + std::to_string(gpu_for_local_rank(l, gpus));
      } else {
        d.no_gpu_reason = "no device";
      }
      out.push_back(d);
    }
  return out;
}

void expect_config_error(const std::function<void()>& f, const std::string& key, const std::string& needle) {
  try {
    f();
    FAIL() << "expected a ConfigError on key " << key;
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), key);
    EXPECT_EQ(e.file(), "study.yaml");
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(DevicePlan, GpuIndexWrapsAroundTheNodesGpus) {
  EXPECT_EQ(gpu_for_local_rank(0, 4), 0);
  EXPECT_EQ(gpu_for_local_rank(3, 4), 3);
  EXPECT_EQ(gpu_for_local_rank(5, 4), 1);
  EXPECT_EQ(gpu_for_local_rank(2, 0), -1);
}

TEST(DevicePlan, CpuStudyStaysOnCpuEvenWithGpus) {
  DevicePlan p = plan_devices(study("cpu", "auto"), layout({2}), ranks(1, 2, 2), true);
  EXPECT_FALSE(p.cuda);
  EXPECT_EQ(p.comm, "mpi");
  EXPECT_EQ(p.gpu, (std::vector<int>{-1, -1}));
  EXPECT_EQ(p.label, (std::vector<std::string>{"cpu", "cpu"}));
}

TEST(DevicePlan, AutoWithoutGpusIsCpu) {
  DevicePlan p = plan_devices(study("auto", "auto"), layout({1, 1}), ranks(1, 2, 0), true);
  EXPECT_FALSE(p.cuda);
  EXPECT_EQ(p.comm, "mpi");
}

TEST(DevicePlan, AutoNeedsEveryRankToHaveAGpu) {
  auto r = ranks(2, 1, 1);
  r[1].gpus = 0;
  r[1].no_gpu_reason = "no driver";
  EXPECT_FALSE(plan_devices(study("auto", "auto"), layout({2}), r, true).cuda);
  expect_config_error([&] { plan_devices(study("cuda", "auto"), layout({2}), r, true); }, "device",
                      "world rank 1 on host node1 has no GPU to train on (no driver)");
}

TEST(DevicePlan, OneGpuPerRankPicksNccl) {
  DevicePlan p = plan_devices(study("auto", "auto"), layout({4}), ranks(1, 4, 4), true);
  EXPECT_TRUE(p.cuda);
  EXPECT_EQ(p.comm, "nccl");
  EXPECT_EQ(p.gpu, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(p.label[2], "cuda:2 NVIDIA H100 GPU-node0-2");
}

TEST(DevicePlan, SameLocalIndexOnTwoHostsIsTwoGpus) {
  DevicePlan p = plan_devices(study("cuda", "nccl"), layout({2}), ranks(2, 1, 1), true);
  EXPECT_EQ(p.comm, "nccl");
  EXPECT_EQ(p.gpu, (std::vector<int>{0, 0}));
}

TEST(DevicePlan, SharedGpuInAGroupFallsBackToHostStagedMpi) {
  DevicePlan p = plan_devices(study("auto", "auto"), layout({2}), ranks(1, 2, 1), true);
  EXPECT_TRUE(p.cuda);
  EXPECT_EQ(p.comm, "mpi");
  EXPECT_EQ(p.gpu, (std::vector<int>{0, 0}));
  EXPECT_NE(p.summary.find("staged through host memory"), std::string::npos) << p.summary;
}

TEST(DevicePlan, OneRankGroupsMayShareAGpuUnderNccl) {
  // Different groups are different NCCL communicators: sharing is fine.
  DevicePlan p = plan_devices(study("cuda", "nccl"), layout({1, 1}), ranks(1, 2, 1), true);
  EXPECT_EQ(p.comm, "nccl");
}

TEST(DevicePlan, NcclOnSharedGpuSaysWhatToChange) {
  expect_config_error(
      [] {
        plan_devices(study("cuda", "nccl"), layout({1, 2}), ranks(1, 3, 1), true);
      },
      "comm", "group 1 puts world ranks 1 and 2 on the same GPU (host node0");
  expect_config_error([] { plan_devices(study("cuda", "nccl"), layout({2}), ranks(1, 2, 1), true); }, "comm",
                      "use comm: mpi");
}

TEST(DevicePlan, NcclNotBuilt) {
  expect_config_error([] { plan_devices(study("cuda", "nccl"), layout({1}), ranks(1, 1, 1), false); }, "comm",
                      "built without NCCL");
  DevicePlan p = plan_devices(study("cuda", "auto"), layout({1}), ranks(1, 1, 1), false);
  EXPECT_EQ(p.comm, "mpi");
}

TEST(DevicePlan, NcclOnCpuIsAnError) {
  expect_config_error([] { plan_devices(study("cpu", "nccl"), layout({1}), ranks(1, 1, 1), true); }, "comm",
                      "trains on the CPU");
  expect_config_error([] { plan_devices(study("auto", "nccl"), layout({1}), ranks(1, 1, 0), true); }, "comm",
                      "no GPU to train on");
}

TEST(DevicePlan, IdleRanksStillGetALabel) {
  Layout l = layout({2});
  l.world_size = 3;
  l.idle_ranks = {2};
  DevicePlan p = plan_devices(study("auto", "auto"), l, ranks(1, 3, 4), true);
  EXPECT_EQ(p.comm, "nccl");
  EXPECT_EQ(p.label.size(), 3u);
}

// gpu.graphs: the plan says whether steps replay from CUDA graphs, and why not.
DevicePlan graphs_plan(const std::string& device, const std::string& graphs, const std::string& model, bool built) {
  Study st = study(device, "auto");
  st.gpu.graphs = graphs;
  st.model.name = model;
  DevicePlan p = plan_devices(st, layout({1, 1}), ranks(1, 2, 1), true);
  plan_graphs(st, built, p);
  return p;
}

TEST(DevicePlan, GraphsAutoTakesThemOnCudaForBuiltinModels) {
  DevicePlan p = graphs_plan("auto", "auto", "mlp", true);
  EXPECT_TRUE(p.graphs);
  EXPECT_NE(p.summary.find("CUDA graphs: on"), std::string::npos) << p.summary;
}

TEST(DevicePlan, GraphsAutoFallsBackAndSaysWhy) {
  DevicePlan ts = graphs_plan("auto", "auto", "torchscript", true);
  EXPECT_FALSE(ts.graphs);
  EXPECT_NE(ts.summary.find("CUDA graphs: off (model.name is torchscript"), std::string::npos) << ts.summary;
  DevicePlan unbuilt = graphs_plan("auto", "auto", "cnn", false);
  EXPECT_FALSE(unbuilt.graphs);
  EXPECT_NE(unbuilt.summary.find("cannot capture CUDA graphs"), std::string::npos) << unbuilt.summary;
  DevicePlan off = graphs_plan("auto", "off", "mlp", true);
  EXPECT_FALSE(off.graphs);
  EXPECT_NE(off.summary.find("CUDA graphs: off (gpu.graphs: off)"), std::string::npos) << off.summary;
}

TEST(DevicePlan, GraphsOnTheCpuAreSilentUnderAutoAndAnErrorUnderOn) {
  DevicePlan cpu = graphs_plan("cpu", "auto", "mlp", true);
  EXPECT_FALSE(cpu.graphs);
  EXPECT_EQ(cpu.summary.find("graphs"), std::string::npos) << cpu.summary;
  expect_config_error([] { graphs_plan("cpu", "on", "mlp", true); }, "gpu.graphs", "trains on the CPU");
  expect_config_error([] { graphs_plan("auto", "on", "torchscript", true); }, "gpu.graphs", "torchscript");
  expect_config_error([] { graphs_plan("auto", "on", "mlp", false); }, "gpu.graphs", "cannot capture");
  EXPECT_TRUE(graphs_plan("auto", "on", "cnn", true).graphs);
}

TEST(DevicePlan, GpuSharingListsTheGroupsOnEachGpu) {
  // 4 ranks, 2 per host, 1 GPU per host: group 0 (ranks 0, 1) on host 0, groups 1 and 2 on host 1.
  const Layout l = layout({2, 1, 1});
  const auto names = planned_rank_gpus(4, 2, 1);
  EXPECT_EQ(names, (std::vector<std::string>{"host 0 cuda:0", "host 0 cuda:0", "host 1 cuda:0", "host 1 cuda:0"}));
  const auto shares = gpu_sharing(l, names);
  ASSERT_EQ(shares.size(), 2u);
  EXPECT_EQ(shares[0].gpu, "host 0 cuda:0");
  EXPECT_EQ(shares[0].groups, (std::vector<int>{0}));
  EXPECT_EQ(shares[1].groups, (std::vector<int>{1, 2}));
  // Ranks off the GPU (the CPU, idle ranks) are left out.
  EXPECT_TRUE(gpu_sharing(l, {"", "", "", ""}).empty());
  // Ranks filling hosts in order, GPUs wrapping around on each host.
  EXPECT_EQ(planned_rank_gpus(3, 3, 2), (std::vector<std::string>{"host 0 cuda:0", "host 0 cuda:1", "host 0 cuda:0"}));
  EXPECT_THROW(planned_rank_gpus(2, 0, 1), std::invalid_argument);
}

TEST(DevicePlan, RecordRoundTrips) {
  RankDevice d;
  d.host = "gpu-node-7";
  d.local_rank = 3;
  d.gpus = 8;
  d.gpu_name = "NVIDIA H100 80GB HBM3";
  d.gpu_uuid = "GPU-0a1b2c3d-0000-1111-2222-333344445555";
  RankDevice e = RankDevice::parse(d.serialize());
  EXPECT_EQ(e.host, d.host);
  EXPECT_EQ(e.local_rank, 3);
  EXPECT_EQ(e.gpus, 8);
  EXPECT_EQ(e.gpu_name, d.gpu_name);
  EXPECT_EQ(e.gpu_uuid, d.gpu_uuid);
  RankDevice none;
  none.host = "cpu-node";
  none.no_gpu_reason = "LibTorch without CUDA";
  EXPECT_EQ(RankDevice::parse(none.serialize()).no_gpu_reason, "LibTorch without CUDA");
  EXPECT_THROW(RankDevice::parse("a\tb"), std::invalid_argument);
}

TEST(DevicePlan, WrongNumberOfRecordsIsABug) {
  EXPECT_THROW(plan_devices(study("auto", "auto"), layout({2}), ranks(1, 1, 1), true), std::invalid_argument);
}

}  // namespace
}  // namespace bs
