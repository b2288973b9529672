#pragma once
// Our own deterministic randomness for everything that must agree across ranks,
// devices and LibTorch versions (permutations, parameter init, synthetic data):
// std::shuffle and torch generators are not specified bit-for-bit.
#include <cstdint>
#include <initializer_list>
#include <vector>

namespace bs {

// Mixes several values into one 64-bit seed (splitmix64 chain).
uint64_t mix_seed(std::initializer_list<uint64_t> parts);

class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next_u64();
  // Uniform in [0, bound) by multiply-shift; bias < bound / 2^64.
  uint64_t below(uint64_t bound);
  double uniform();  // [0, 1)
  double normal();   // standard normal, Box-Muller

 private:
  uint64_t s_[4];
};

// Fisher-Yates permutation of 0..n-1.
std::vector<int64_t> permutation(int64_t n, uint64_t seed);

}  // namespace bs
