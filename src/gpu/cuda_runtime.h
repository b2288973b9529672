#pragma once
// The few CUDA runtime calls batchscope makes itself (device choice, events,
// host staging). No CUDA or LibTorch header here: builds without CUDA compile
// cuda_absent.cpp instead of cuda_runtime.cpp (CMake picks), and report zero
// devices.
#include <cstddef>
#include <cstdint>
#include <string>

namespace bs::gpu {

// A cudaStream_t, opaque here. nullptr is the legacy default stream, where
// LibTorch runs its kernels unless a caller sets another stream (batchscope
// never does; the trainer checks).
using StreamHandle = void*;

bool built_with_cuda();
// CUDA runtime version ("13.0"), or "none" when built without CUDA.
std::string runtime_version();
// Devices this process can see; 0 without a driver, a device or CUDA.
int device_count();
void set_device(int device);

struct DeviceInfo {
  std::string name;  // "NVIDIA H100 80GB HBM3"
  std::string uuid;  // "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", as nvidia-smi -L prints it
};
DeviceInfo device_info(int device);
// Bytes free on the current device (cudaMemGetInfo); 0 without CUDA.
int64_t free_memory();

// A stream of our own that does not synchronize implicitly with the legacy
// default stream (cudaStreamNonBlocking): ordering is by events only.
class Stream {
 public:
  Stream();
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  StreamHandle handle() const { return handle_; }

 private:
  StreamHandle handle_ = nullptr;
};

class Event {
 public:
  Event();
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void record(StreamHandle stream);
  // Work queued on `stream` after this call waits for the recorded point.
  void make_wait(StreamHandle stream) const;
  // Non-blocking: has everything before the recorded point finished?
  bool query() const;

 private:
  void* handle_ = nullptr;
};

// Page-locked host memory, for staging device buffers through MPI.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer();
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  void* reserve(size_t bytes);  // grows, never shrinks

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// Synchronous copies on the legacy default stream: they start after the
// kernels LibTorch queued there and the host waits for them to finish.
void copy_to_host(void* dst, const void* src, size_t bytes);
void copy_to_device(void* dst, const void* src, size_t bytes);

}  // namespace bs::gpu
