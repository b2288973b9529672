#include "comm/mpi_env.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include <sched.h>

#include "comm/mpi_wait.h"
#include "util/check.h"

namespace bs {

int world_rank_if_initialized() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (!init || fin) return -1;
  int r = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

int usable_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return online_cores();
  return std::max(1, CPU_COUNT(&set));
}

int online_cores() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

namespace {

// Open MPI's blocking calls busy-poll. With mpi_yield_when_idle they call
// sched_yield between polls, so a rank waiting for its peer gives the core to
// another rank that has work. mpirun turns it on itself only when its slot
// count says the node is oversubscribed (-np above the slots, --oversubscribe),
// not when a hostfile, --host or a scheduler claims more slots than there are
// cores. Measured on 2 cores, the 4-rank study of configs/bench/oversub.yaml
// under `mpirun --host localhost:4` took 15-29 s busy-polling and 10.5-11.3 s
// yielding. So: more ranks on this node than it has cores turns it on, unless
// the user chose (--mca and -x reach us as this variable). Only then: ranks
// bound one to a core (mpirun -np 2) next to another program's busy process
// took 39 s yielding against 17-22 s polling (each yield hands the core to that
// process for a time slice). The node's online CPUs, not this rank's affinity
// mask, are the measure: a bound rank's mask of one core would look
// oversubscribed. Open MPI reads MCA settings from the environment in
// MPI_Init, hence before it.
void yield_when_oversubscribed() {
  if (std::getenv("OMPI_MCA_mpi_yield_when_idle")) return;
  const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  if (local && std::atoi(local) > online_cores()) setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);
}

}  // namespace

MpiEnv::MpiEnv(int* argc, char*** argv) {
  yield_when_oversubscribed();
  int provided = 0;
  BS_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
  // Errors come back as codes, so our check macro can name the call and rank
  // instead of MPI aborting with its own terse message.
  BS_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  BS_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
  BS_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
  char name[MPI_MAX_PROCESSOR_NAME];
  int len = 0;
  BS_MPI_CHECK(MPI_Get_processor_name(name, &len));
  host_.assign(name, static_cast<size_t>(len));
  MPI_Comm local = MPI_COMM_NULL;
  BS_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local));
  BS_MPI_CHECK(MPI_Comm_size(local, &local_size_));
  BS_MPI_CHECK(MPI_Comm_rank(local, &local_rank_));
  BS_MPI_CHECK(MPI_Comm_free(&local));
}

MpiEnv::~MpiEnv() {
  int fin = 0;
  MPI_Finalized(&fin);
  if (!fin) MPI_Finalize();
}

std::unique_ptr<MpiCommunicator> MpiEnv::split(int color, int key) const {
  MPI_Comm comm = MPI_COMM_NULL;
  BS_MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, color < 0 ? MPI_UNDEFINED : color, key, &comm));
  if (comm == MPI_COMM_NULL) return nullptr;
  BS_MPI_CHECK(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN));
  return std::make_unique<MpiCommunicator>(comm, local_size_ > online_cores());
}

std::vector<std::string> MpiEnv::allgather(const std::string& mine, MPI_Comm comm) const {
  int n = 0;
  BS_MPI_CHECK(MPI_Comm_size(comm, &n));
  int len = static_cast<int>(mine.size());
  std::vector<int> lens(static_cast<size_t>(n)), offs(static_cast<size_t>(n));
  BS_MPI_CHECK(MPI_Allgather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, comm));
  int total = 0;
  for (int i = 0; i < n; ++i) {
    offs[static_cast<size_t>(i)] = total;
    total += lens[static_cast<size_t>(i)];
  }
  std::string all(static_cast<size_t>(total), '\0');
  BS_MPI_CHECK(MPI_Allgatherv(mine.data(), len, MPI_CHAR, all.data(), lens.data(), offs.data(), MPI_CHAR, comm));
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i)
    out.push_back(all.substr(static_cast<size_t>(offs[static_cast<size_t>(i)]),
                             static_cast<size_t>(lens[static_cast<size_t>(i)])));
  return out;
}

void MpiEnv::broadcast(int& flag, std::string& text, int root) const {
  int len = static_cast<int>(text.size());
  int hdr[2] = {flag, len};
  BS_MPI_CHECK(MPI_Bcast(hdr, 2, MPI_INT, root, MPI_COMM_WORLD));
  flag = hdr[0];
  text.resize(static_cast<size_t>(hdr[1]));
  if (hdr[1] > 0) BS_MPI_CHECK(MPI_Bcast(text.data(), hdr[1], MPI_CHAR, root, MPI_COMM_WORLD));
}

int MpiEnv::allreduce_max(int value) const {
  // Non-blocking with a short sleep: ranks that finish early (idle ranks, or
  // groups with shorter queues) would otherwise busy-poll a core each until
  // the last group is done.
  int out = 0;
  MPI_Request req = MPI_REQUEST_NULL;
  BS_MPI_CHECK(MPI_Iallreduce(&value, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD, &req));
  wait_with_naps(req, std::chrono::milliseconds(5));
  return out;
}

void MpiEnv::abort(int code) const {
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

}  // namespace bs
