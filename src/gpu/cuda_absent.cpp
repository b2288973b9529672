// Built instead of cuda_runtime.cpp when CMake finds no CUDA toolkit: the
// study can only run on the CPU, and anything that needs a GPU says so.
#include "gpu/cuda_runtime.h"
#include "util/errors.h"

namespace bs::gpu {
namespace {
[[noreturn]] void absent(const char* what) {
  throw LibraryError(std::string("CUDA: ") + what +
                     " needs CUDA, but this batchscope was built without it (CMake found no CUDA toolkit; "
                     "rebuild with one installed, or use device: cpu)");
}
}  // namespace

bool built_with_cuda() { return false; }
std::string runtime_version() { return "none"; }
int device_count() { return 0; }
void set_device(int) { absent("set_device"); }
DeviceInfo device_info(int) { absent("device_info"); }
int64_t free_memory() { return 0; }
Stream::Stream() { absent("a stream"); }
Stream::~Stream() = default;
Event::Event() { absent("an event"); }
Event::~Event() = default;
void Event::record(StreamHandle) { absent("an event"); }
void Event::make_wait(StreamHandle) const { absent("an event"); }
bool Event::query() const { absent("an event"); }
PinnedBuffer::~PinnedBuffer() = default;
void* PinnedBuffer::reserve(size_t) { absent("pinned memory"); }
void copy_to_host(void*, const void*, size_t) { absent("a device copy"); }
void copy_to_device(void*, const void*, size_t) { absent("a device copy"); }

}  // namespace bs::gpu
