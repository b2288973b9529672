#include "train/stats_layout.h"

#include <stdexcept>
#include <string>

namespace bs {

StatsLayout::StatsLayout(int64_t params, int ranks, int64_t micro_per_rank, int64_t layers)
    : params_(params), n_(ranks), k_(static_cast<int64_t>(ranks) * micro_per_rank), l_(layers) {
  if (params < 0 || ranks < 1 || micro_per_rank < 1 || layers < 0)
    throw std::invalid_argument("StatsLayout: params " + std::to_string(params) + ", ranks " + std::to_string(ranks) +
                                ", micro-batches " + std::to_string(micro_per_rank) + ", layers " +
                                std::to_string(layers));
}

void StatsLayout::decode(const double* row, const std::vector<int64_t>& batch_per_rank, int64_t global_batch,
                         StepRecord& out) const {
  out.loss = 0;
  for (int i = 0; i < ranks(); ++i) {
    out.loss += static_cast<double>(batch_per_rank[static_cast<size_t>(i)]) / global_batch * row[loss(i)];
    out.loss_rank.push_back(static_cast<float>(row[loss(i)]));
    out.sqnorm_local.push_back(static_cast<float>(row[sq_local(i)]));
  }
  for (int64_t q = 0; q < k_; ++q) out.sqnorm_micro.push_back(static_cast<float>(row[sq_micro(q)]));
  for (int64_t q = 0; q < k_ * l_; ++q) out.layer_micro.push_back(static_cast<float>(row[layer_micro(0) + q]));
  for (int64_t l = 0; l < l_; ++l) out.layer_global.push_back(static_cast<float>(row[layer_global() + l]));
  out.sqnorm_global = static_cast<float>(row[sq_global()]);
}

}  // namespace bs
