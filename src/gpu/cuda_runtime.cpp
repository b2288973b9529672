#include "gpu/cuda_runtime.h"

#include <cstdio>

#include <cuda_runtime_api.h>

#include "util/check.h"

#define BS_CUDA_CHECK(call)                                                                             \
  do {                                                                                                  \
    cudaError_t bs_rc_ = (call);                                                                        \
    if (bs_rc_ != cudaSuccess)                                                                          \
      ::bs::detail::throw_library_error("CUDA", #call, cudaGetErrorString(bs_rc_), __FILE__, __LINE__); \
  } while (0)

namespace bs::gpu {

bool built_with_cuda() { return true; }

std::string runtime_version() {
  int v = 0;
  if (cudaRuntimeGetVersion(&v) != cudaSuccess) return "unknown";
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

int device_count() {
  int n = 0;
  // No driver or no device is not an error here: the study then runs on the
  // CPU (device: auto) or fails with a ConfigError naming `device`.
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return 0;
  }
  return n;
}

void set_device(int device) { BS_CUDA_CHECK(cudaSetDevice(device)); }

int64_t free_memory() {
  size_t free = 0, total = 0;
  BS_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return static_cast<int64_t>(free);
}

DeviceInfo device_info(int device) {
  cudaDeviceProp p{};
  BS_CUDA_CHECK(cudaGetDeviceProperties(&p, device));
  DeviceInfo info;
  info.name = p.name;
  const auto* u = reinterpret_cast<const unsigned char*>(p.uuid.bytes);
  char buf[64];
  std::snprintf(buf, sizeof buf, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
                u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
  info.uuid = buf;
  return info;
}

Stream::Stream() {
  cudaStream_t s = nullptr;
  BS_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  handle_ = s;
}
Stream::~Stream() {
  if (handle_) cudaStreamDestroy(static_cast<cudaStream_t>(handle_));
}

Event::Event() {
  cudaEvent_t e = nullptr;
  // Timing off: these events only order streams and mark completion, and
  // timing-enabled events are slower to record and query.
  BS_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  handle_ = e;
}
Event::~Event() {
  if (handle_) cudaEventDestroy(static_cast<cudaEvent_t>(handle_));
}
void Event::record(StreamHandle stream) {
  BS_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(handle_), static_cast<cudaStream_t>(stream)));
}
void Event::make_wait(StreamHandle stream) const {
  BS_CUDA_CHECK(cudaStreamWaitEvent(static_cast<cudaStream_t>(stream), static_cast<cudaEvent_t>(handle_), 0));
}
bool Event::query() const {
  cudaError_t rc = cudaEventQuery(static_cast<cudaEvent_t>(handle_));
  if (rc == cudaErrorNotReady) {
    // cudaEventQuery also leaves cudaErrorNotReady as the thread's last error,
    // and LibTorch's next launch check (cudaGetLastError) would then throw it
    // as a failure of an unrelated kernel. PyTorch's own queries clear it too.
    cudaGetLastError();
    return false;
  }
  BS_CUDA_CHECK(rc);
  return true;
}

PinnedBuffer::~PinnedBuffer() {
  if (data_) cudaFreeHost(data_);
}
void* PinnedBuffer::reserve(size_t bytes) {
  if (bytes <= bytes_) return data_;
  if (data_) BS_CUDA_CHECK(cudaFreeHost(data_));
  data_ = nullptr;
  bytes_ = 0;
  BS_CUDA_CHECK(cudaMallocHost(&data_, bytes));
  bytes_ = bytes;
  return data_;
}

void copy_to_host(void* dst, const void* src, size_t bytes) {
  BS_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}
void copy_to_device(void* dst, const void* src, size_t bytes) {
  BS_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}

}  // namespace bs::gpu
