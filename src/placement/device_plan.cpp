#include "placement/device_plan.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "util/errors.h"

namespace bs {

std::string RankDevice::serialize() const {
  return host + "\t" + std::to_string(local_rank) + "\t" + std::to_string(gpus) + "\t" + no_gpu_reason + "\t" +
         gpu_name + "\t" + gpu_uuid;
}

RankDevice RankDevice::parse(const std::string& text) {
  std::vector<std::string> f;
  std::string cur;
  for (char c : text) {
    if (c == '\t') {
      f.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  f.push_back(cur);
  if (f.size() != 6) throw std::invalid_argument("malformed rank device record: " + text);
  RankDevice d;
  d.host = f[0];
  d.local_rank = std::stoi(f[1]);
  d.gpus = std::stoi(f[2]);
  d.no_gpu_reason = f[3];
  d.gpu_name = f[4];
  d.gpu_uuid = f[5];
  return d;
}

int gpu_for_local_rank(int local_rank, int gpus) { return gpus > 0 ? local_rank % gpus : -1; }

namespace {

std::string why_no_gpu(const RankDevice& d, int rank) {
  return "world rank " + std::to_string(rank) + " on host " + d.host + " has no GPU to train on (" +
         (d.no_gpu_reason.empty() ? "no CUDA device visible" : d.no_gpu_reason) + ")";
}

// The GPU's identity across the job: its UUID, or host and index if the
// driver gave none.
std::string gpu_key(const RankDevice& d) {
  return d.gpu_uuid.empty() ? d.host + ":" + std::to_string(gpu_for_local_rank(d.local_rank, d.gpus)) : d.gpu_uuid;
}

}  // namespace

namespace {

int first_rank_without_gpu(const std::vector<RankDevice>& ranks) {
  for (size_t r = 0; r < ranks.size(); ++r)
    if (ranks[r].gpus <= 0) return static_cast<int>(r);
  return -1;
}

// The CPU plan: only MPI can reduce host buffers.
void plan_cpu(const Study& st, const std::vector<RankDevice>& ranks, int first_without, DevicePlan& p) {
  if (st.comm == "nccl")
    throw ConfigError(
        st.file, "comm",
        "'nccl' reduces GPU buffers, but this study trains on the CPU (device: " + st.device +
            (first_without >= 0 ? "; " + why_no_gpu(ranks[static_cast<size_t>(first_without)], first_without)
                                : std::string()) +
            "); use comm: mpi or comm: auto");
  p.comm = "mpi";
  p.summary = "device: cpu; communicator: mpi";
}

// "" when every replica group has each rank on its own GPU; else which group
// puts two ranks on one GPU (NCCL cannot reduce between them).
std::string shared_gpu(const Layout& layout, const std::vector<RankDevice>& ranks, const DevicePlan& p) {
  for (const auto& grp : layout.groups) {
    std::map<std::string, int> seen;
    for (int r = grp.first_rank; r < grp.first_rank + grp.size; ++r) {
      const RankDevice& d = ranks[static_cast<size_t>(r)];
      auto [it, fresh] = seen.emplace(gpu_key(d), r);
      if (!fresh)
        return "group " + std::to_string(grp.index) + " puts world ranks " + std::to_string(it->second) + " and " +
               std::to_string(r) + " on the same GPU (host " + d.host + ", " + p.label[static_cast<size_t>(r)] +
               "; the host has " + std::to_string(d.gpus) + " GPU" + (d.gpus == 1 ? "" : "s") + ")";
    }
  }
  return "";
}

void check_nccl_possible(const Study& st, bool nccl_built, const std::string& shared) {
  if (!nccl_built)
    throw ConfigError(st.file, "comm",
                      "'nccl', but this batchscope was built without NCCL (cmake found no nccl.h/libnccl; "
                      "pass -DNCCL_ROOT=DIR); use comm: mpi or comm: auto");
  if (!shared.empty())
    throw ConfigError(st.file, "comm",
                      "'nccl' needs every rank of a replica group on its own GPU, but " + shared +
                          "; use comm: mpi (host-staged, works on shared GPUs) or comm: auto, or start no more "
                          "ranks per host than it has GPUs");
}

std::string cuda_summary(const Study& st, const std::vector<RankDevice>& ranks, const std::string& comm,
                         bool nccl_built, const std::string& shared) {
  const size_t n = ranks.size();
  std::set<std::string> gpus, hosts;
  for (const auto& d : ranks) {
    gpus.insert(gpu_key(d));
    hosts.insert(d.host);
  }
  std::ostringstream s;
  s << "device: cuda (" << n << " rank" << (n == 1 ? "" : "s") << " on " << gpus.size() << " GPU"
    << (gpus.size() == 1 ? "" : "s") << " of " << hosts.size() << " host" << (hosts.size() == 1 ? "" : "s")
    << "); communicator: " << (comm == "nccl" ? "nccl" : "mpi, staged through host memory");
  if (comm == "mpi" && st.comm == "auto")
    s << " (" << (!nccl_built ? "built without NCCL" : "NCCL needs one GPU per rank of a group: " + shared) << ")";
  return s.str();
}

}  // namespace

DevicePlan plan_devices(const Study& st, const Layout& layout, const std::vector<RankDevice>& ranks, bool nccl_built) {
  const int n = static_cast<int>(ranks.size());
  if (n != layout.world_size)
    throw std::invalid_argument("plan_devices: " + std::to_string(n) + " rank records for a world of " +
                                std::to_string(layout.world_size));
  DevicePlan p;
  const int first_without = first_rank_without_gpu(ranks);
  if (st.device == "cuda" && first_without >= 0)
    throw ConfigError(st.file, "device",
                      "'cuda', but " + why_no_gpu(ranks[static_cast<size_t>(first_without)], first_without) +
                          "; use device: auto (CUDA where every rank has a GPU, else the CPU) or device: cpu");
  p.cuda = st.device == "cuda" || (st.device == "auto" && first_without < 0 && n > 0);
  for (const RankDevice& d : ranks) {
    const int g = p.cuda ? gpu_for_local_rank(d.local_rank, d.gpus) : -1;
    p.gpu.push_back(g);
    p.label.push_back(g < 0 ? "cpu" : "cuda:" + std::to_string(g) + " " + d.gpu_name + " " + d.gpu_uuid);
  }
  if (!p.cuda) {
    plan_cpu(st, ranks, first_without, p);
    return p;
  }
  const std::string shared = shared_gpu(layout, ranks, p);
  if (st.comm == "nccl") check_nccl_possible(st, nccl_built, shared);
  p.comm = st.comm == "nccl" || (st.comm == "auto" && nccl_built && shared.empty()) ? "nccl" : "mpi";
  p.summary = cuda_summary(st, ranks, p.comm, nccl_built, shared);
  return p;
}

std::vector<GpuShare> gpu_sharing(const Layout& layout, const std::vector<std::string>& rank_gpu) {
  std::vector<GpuShare> out;
  for (const auto& g : layout.groups)
    for (int r = g.first_rank; r < g.first_rank + g.size; ++r) {
      const std::string& name = rank_gpu.at(static_cast<size_t>(r));
      if (name.empty()) continue;
      auto it = std::find_if(out.begin(), out.end(), [&](const GpuShare& s) { return s.gpu == name; });
      if (it == out.end()) it = out.insert(out.end(), GpuShare{name, {}});
      if (it->groups.empty() || it->groups.back() != g.index) it->groups.push_back(g.index);
    }
  return out;
}

std::vector<std::string> planned_rank_gpus(int world, int ranks_per_host, int gpus) {
  if (ranks_per_host < 1 || gpus < 1) throw std::invalid_argument("planned_rank_gpus: ranks_per_host and gpus >= 1");
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(std::max(0, world)));
  for (int r = 0; r < world; ++r)
    out.push_back("host " + std::to_string(r / ranks_per_host) +
                  " cuda:" + std::to_string(gpu_for_local_rank(r % ranks_per_host, gpus)));
  return out;
}

namespace {

// "" when graphs can hold, else why not.
std::string graphs_blocker(const Study& st, bool graphs_built, const DevicePlan& p) {
  if (!p.cuda) return "this study trains on the CPU";
  if (!graphs_built) return "this batchscope's LibTorch cannot capture CUDA graphs";
  if (st.model.name == "torchscript")
    return "model.name is torchscript: a module may branch on the host or draw random numbers (dropout), "
           "which a graph would replay frozen";
  return "";
}

}  // namespace

void plan_graphs(const Study& st, bool graphs_built, DevicePlan& p) {
  p.graphs = false;
  if (st.gpu.graphs == "off") {
    if (p.cuda) p.summary += "; CUDA graphs: off (gpu.graphs: off)";
    return;
  }
  const std::string no = graphs_blocker(st, graphs_built, p);
  if (!no.empty() && st.gpu.graphs == "on")
    throw ConfigError(st.file, "gpu.graphs",
                      "'on', but " + no + "; use gpu.graphs: auto (graphs where they can hold, else eager) or off");
  p.graphs = no.empty();
  if (p.cuda)
    p.summary += p.graphs ? "; CUDA graphs: on (each run's first step eager, the rest replayed)"
                          : "; CUDA graphs: off (" + no + ")";
}

}  // namespace bs
