#include "comm/nccl_communicator.h"

#include <deque>

#include <nccl.h>

#include "comm/mpi_env.h"
#include "comm/watchdog.h"
#include "gpu/cuda_runtime.h"
#include "util/check.h"

namespace bs {
namespace {

std::string where(int group_rank, int group_size) {
  std::string s = "rank " + std::to_string(group_rank) + " of a " + std::to_string(group_size) + "-rank NCCL group";
  const int w = world_rank_if_initialized();
  if (w >= 0) s += " (world rank " + std::to_string(w) + ")";
  return s;
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(MPI_Comm group, const NcclOptions& o) : options_(o) {
    BS_MPI_CHECK(MPI_Comm_rank(group, &rank_));
    BS_MPI_CHECK(MPI_Comm_size(group, &size_));
    // NCCL binds the communicator to the current device.
    gpu::set_device(o.device);
    stream_ = std::make_unique<gpu::Stream>();
    ready_ = std::make_unique<gpu::Event>();
    ncclUniqueId id{};
    if (rank_ == 0) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    BS_MPI_CHECK(MPI_Bcast(&id, static_cast<int>(sizeof id), MPI_BYTE, 0, group));
    // Non-blocking mode: no NCCL call can block the host, so a peer that never
    // joins (or never reaches a collective) shows up in our polling loop as
    // a timeout that we report, instead of a process stuck inside NCCL.
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclResult_t rc = ncclCommInitRankConfig(&comm_, size_, id, rank_, &config);
    if (rc != ncclSuccess && rc != ncclInProgress) fail("ncclCommInitRank", ncclGetErrorString(rc));
    settle("ncclCommInitRank");
  }

  ~NcclCommunicator() override {
    if (!comm_) return;
    try {
      wait();
      // Finalize flushes what is queued; destroy then frees without blocking.
      ncclResult_t rc = ncclCommFinalize(comm_);
      if (rc == ncclSuccess || rc == ncclInProgress) settle("ncclCommFinalize");
      ncclCommDestroy(comm_);
    } catch (...) {
      if (comm_) ncclCommAbort(comm_);  // never throw from here; the error was reported where it happened
    }
  }

  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "nccl"; }
  void allreduce_sum(float* data, size_t count) override { allreduce(data, count, ncclFloat32); }
  void allreduce_sum(double* data, size_t count) override { allreduce(data, count, ncclFloat64); }

  void wait() override {
    while (!in_flight_.empty()) wait_oldest();
  }

 private:
  struct InFlight {
    std::unique_ptr<gpu::Event> done;
    uint64_t seq = 0;
    size_t count = 0;
  };

  void allreduce(void* data, size_t count, ncclDataType_t type) {
    if (!comm_) throw LibraryError("NCCL: allreduce on " + where(rank_, size_) + " after the communicator was aborted");
    // Bound the work queued ahead of the host: past this, wait for the oldest
    // collective here, where a hung peer can be timed out, rather than inside
    // a kernel launch once CUDA's launch queue is full.
    while (static_cast<int>(in_flight_.size()) >= options_.max_in_flight) wait_oldest();
    // LibTorch queued the gradient's kernels on the legacy default stream; our
    // NCCL stream is non-blocking (no implicit ordering with it), so an event
    // makes the allreduce start only after those kernels, without the host
    // waiting for them.
    ready_->record(nullptr);
    ready_->make_wait(stream_->handle());
    ncclResult_t rc =
        ncclAllReduce(data, data, count, type, ncclSum, comm_, static_cast<cudaStream_t>(stream_->handle()));
    const std::string op = "ncclAllReduce #" + std::to_string(seq_ + 1) + " (" + std::to_string(count) + " values)";
    if (rc != ncclSuccess && rc != ncclInProgress) fail(op, ncclGetErrorString(rc));
    settle(op);
    InFlight f;
    f.done = take_event();
    f.seq = ++seq_;
    f.count = count;
    f.done->record(stream_->handle());
    // ...and the other way: the optimizer step (default stream) reads the sum
    // only after the allreduce wrote it.
    f.done->make_wait(nullptr);
    in_flight_.push_back(std::move(f));
  }

  void wait_oldest() {
    InFlight f = std::move(in_flight_.front());
    in_flight_.pop_front();
    const std::string op = "ncclAllReduce #" + std::to_string(f.seq) + " (" + std::to_string(f.count) + " values)";
    watch([&] { return f.done->query(); }, [&] { return async_error(op); },
          [&](const std::string& why) { fail(op, why); }, watch_options());
    spare_.push_back(std::move(f.done));
  }

  // Non-blocking NCCL calls may return ncclInProgress; the communicator must
  // then be polled until it leaves that state before anything else is called.
  void settle(const std::string& op) {
    watch([&] { return state(op) == ncclSuccess; }, [&] { return async_error(op); },
          [&](const std::string& why) { fail(op, why); }, watch_options());
  }

  ncclResult_t state(const std::string& op) {
    ncclResult_t st = ncclSuccess;
    ncclResult_t rc = ncclCommGetAsyncError(comm_, &st);
    if (rc != ncclSuccess) fail(op, std::string("ncclCommGetAsyncError: ") + ncclGetErrorString(rc));
    return st;
  }

  // "" while the communicator is healthy (done or still in progress).
  std::string async_error(const std::string& op) {
    const ncclResult_t st = state(op);
    return st == ncclSuccess || st == ncclInProgress ? std::string() : std::string(ncclGetErrorString(st));
  }

  WatchOptions watch_options() const {
    WatchOptions w;
    w.timeout_s = options_.timeout_s;
    return w;
  }

  void check(ncclResult_t rc, const std::string& op) {
    if (rc != ncclSuccess) fail(op, ncclGetErrorString(rc));
  }

  // Aborting the communicator stops its kernels, so the CUDA work queued
  // behind them drains and the process can exit; main then aborts the MPI job.
  [[noreturn]] void fail(const std::string& op, const std::string& why) {
    std::string detail = why;
    if (comm_) {
      const char* last = ncclGetLastError(comm_);
      if (last && *last) detail += "; NCCL says: " + std::string(last);
      ncclCommAbort(comm_);
      comm_ = nullptr;
    }
    in_flight_.clear();
    throw LibraryError("NCCL: " + op + " failed on " + where(rank_, size_) + " (GPU " +
                       std::to_string(options_.device) + "): " + detail);
  }

  std::unique_ptr<gpu::Event> take_event() {
    if (spare_.empty()) return std::make_unique<gpu::Event>();
    auto e = std::move(spare_.back());
    spare_.pop_back();
    return e;
  }

  NcclOptions options_;
  int rank_ = 0, size_ = 1;
  ncclComm_t comm_ = nullptr;
  std::unique_ptr<gpu::Stream> stream_;
  std::unique_ptr<gpu::Event> ready_;  // streams and events belong to the device current at creation
  std::deque<InFlight> in_flight_;
  std::vector<std::unique_ptr<gpu::Event>> spare_;
  uint64_t seq_ = 0;
};

}  // namespace

bool nccl_built() { return true; }

std::string nccl_version() {
  int v = 0;
  if (ncclGetVersion(&v) != ncclSuccess) return "unknown";
  // NCCL >= 2.9 encodes major*10000 + minor*100 + patch.
  return std::to_string(v / 10000) + "." + std::to_string((v % 10000) / 100) + "." + std::to_string(v % 100);
}

std::string nccl_header_version() {
  return std::to_string(NCCL_MAJOR) + "." + std::to_string(NCCL_MINOR) + "." + std::to_string(NCCL_PATCH);
}

std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm group, const NcclOptions& options) {
  return std::make_unique<NcclCommunicator>(group, options);
}

}  // namespace bs
