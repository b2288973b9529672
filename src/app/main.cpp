#include <malloc.h>

#include "app/commands.h"

int main(int argc, char** argv) {
  // LibTorch's CPU allocator takes every tensor from malloc. A step allocates
  // several model-sized tensors (gradients, their squares); above glibc's mmap
  // threshold each one is a fresh mmap, faulted in page by page and unmapped
  // on free (page faults were 17% of a CPU MLP step in perf). Keeping such
  // blocks in the heap lets the next step reuse warm pages: 29 -> 17.6 ms per
  // step at batch 32 (batchscope bench, 1 rank, 1 thread).
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  return bs::main_entry(argc, argv);
}
