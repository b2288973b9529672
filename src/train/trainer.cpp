#include "train/trainer.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/csrc/api/include/torch/cuda.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/api/include/torch/version.h>

#include <chrono>
#include <cmath>
#include <stdexcept>

#include "data/batch_plan.h"
#include "gpu/cuda_runtime.h"
#include "models/model.h"
#include "noise/estimator.h"
#include "train/optimizer.h"
#include "train/schedule.h"
#include "util/errors.h"
#include "util/rng.h"
#include "util/signals.h"

namespace bs {
namespace {

using Clock = std::chrono::steady_clock;

struct DeviceSplit {
  at::Tensor images;  // uint8 [N, C, H, W]
  at::Tensor labels;  // int64 [N]
  float mean = 0, stdev = 1;
};

DeviceSplit to_device(const Dataset& d, const at::Device& dev) {
  DeviceSplit s;
  // from_blob borrows; clone()/to() makes the device copy we own.
  s.images = at::from_blob(const_cast<uint8_t*>(d.images.data()), {d.size, d.channels, d.height, d.width},
                           at::TensorOptions().dtype(at::kByte))
                 .to(dev, /*non_blocking=*/false, /*copy=*/true);
  s.labels = at::from_blob(const_cast<int64_t*>(d.labels.data()), {d.size}, at::TensorOptions().dtype(at::kLong))
                 .to(dev, false, true);
  s.mean = d.mean;
  s.stdev = d.stdev;
  return s;
}

at::Tensor normalize(const DeviceSplit& s, const at::Tensor& images_u8) {
  return images_u8.to(at::kFloat).mul_(1.0f / (255.0f * s.stdev)).sub_(s.mean / s.stdev);
}

}  // namespace

struct Trainer::Impl {
  const Study& study;
  Communicator& comm;
  TrainerOptions options;
  at::Device device{at::kCPU};
  DeviceSplit train, test;
  at::Tensor train_eval_idx;
  std::unique_ptr<Model> model;

  Impl(const Study& st, const DataSplits& data, Communicator& c, TrainerOptions o)
      : study(st), comm(c), options(o) {
    if (o.gpu >= 0) use_gpu(o.gpu);
    train = to_device(data.train, device);
    test = to_device(data.test, device);
    auto idx = train_eval_indices(data.train.size, st.eval.train_subset, st.seed);
    train_eval_idx = at::from_blob(idx.data(), {static_cast<int64_t>(idx.size())}, at::kLong).to(device, false, true);
    model = make_model(st.model, data.train.channels, data.train.height, data.train.width, data.train.num_classes);
  }

  void use_gpu(int gpu) {
    device = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(gpu));
    // Both the CUDA runtime's current device (for our events and NCCL) and
    // LibTorch's, in case LibTorch loaded its own copy of the runtime.
    gpu::set_device(gpu);
    const auto* impl = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA);
    impl->setDevice(device);
    // The communicators order their work after the legacy default stream
    // (where LibTorch runs unless told otherwise); a different current stream
    // would race with them, so refuse it rather than train on wrong sums.
    if (impl->getStream(device).id() != 0)
      throw LibraryError("CUDA: LibTorch's current stream on " + device.str() +
                         " is not the default stream; batchscope's communicators order against the default stream");
  }

  // Sum of loss and correct predictions over this rank's shard of `idx` (or of
  // the whole split when idx is undefined), reduced over the group.
  std::pair<double, double> evaluate(const at::Tensor& params, const DeviceSplit& split, const at::Tensor& idx) {
    at::NoGradGuard no_grad;
    const int64_t total = idx.defined() ? idx.size(0) : split.labels.size(0);
    const int64_t n = comm.size(), r = comm.rank();
    const int64_t begin = total * r / n, end = total * (r + 1) / n;
    // Sums stay on the device across chunks and through the reduction: one
    // host copy per evaluation. [loss sum, correct, count]
    at::Tensor acc = at::zeros({3}, split.images.options().dtype(at::kDouble));
    for (int64_t b = begin; b < end; b += study.eval.batch) {
      const int64_t len = std::min(study.eval.batch, end - b);
      at::Tensor x, y;
      if (idx.defined()) {
        at::Tensor sel = idx.narrow(0, b, len);
        x = split.images.index_select(0, sel);
        y = split.labels.index_select(0, sel);
      } else {
        x = split.images.narrow(0, b, len);
        y = split.labels.narrow(0, b, len);
      }
      at::Tensor logits = model->forward(params, normalize(split, x));
      acc[0] += at::nll_loss(at::log_softmax(logits, 1), y, {}, at::Reduction::Sum).to(at::kDouble);
      acc[1] += logits.argmax(1).eq(y).sum().to(at::kDouble);
    }
    acc.narrow(0, 2, 1).fill_(static_cast<double>(end - begin));
    comm.allreduce_sum(acc.data_ptr<double>(), 3);
    comm.wait();
    at::Tensor host = acc.to(at::kCPU);
    const double* sums = host.data_ptr<double>();
    if (sums[2] == 0) return {std::nan(""), std::nan("")};
    return {sums[0] / sums[2], sums[1] / sums[2]};
  }

  EvalRecord eval_record(const at::Tensor& params, int64_t step, int64_t B, int64_t N) {
    EvalRecord e;
    e.step = step;
    e.samples = step * B;
    e.epoch = static_cast<double>(e.samples) / static_cast<double>(N);
    std::tie(e.val_loss, e.val_acc) = evaluate(params, test, at::Tensor());
    if (train_eval_idx.size(0) > 0) std::tie(e.train_loss, e.train_acc) = evaluate(params, train, train_eval_idx);
    else e.train_loss = e.train_acc = std::nan("");
    return e;
  }

  RunResult run(const RunSpec& spec, RecordSink* sink, const TrainState* resume);
};

RunResult Trainer::Impl::run(const RunSpec& spec, RecordSink* sink, const TrainState* resume) {
  const int n = comm.size(), me = comm.rank();
  if (spec.ranks() != n)
    throw LayoutError("run '" + spec.name + "' needs " + std::to_string(spec.ranks()) + " ranks, but its group has " +
                      std::to_string(n));
  const RunBudget budget = run_budget(study, spec);
  const int64_t N = train.labels.size(0);
  BatchPlan plan(N, spec.batch_per_rank, study.seed, spec.seed);
  const int64_t B = plan.global_batch(), Bi = plan.length(me);
  const int64_t m = study.gns.microbatches;
  const std::vector<int64_t> micro_all = micro_batches(spec.batch_per_rank, m);
  const std::vector<int64_t> micro_mine = micro_batches(Bi, m);
  const int64_t K = n * m;  // small batches of the estimator
  const int64_t L = study.gns.per_layer ? static_cast<int64_t>(model->slots().size()) : 0;
  const float weight = static_cast<float>(Bi) / static_cast<float>(B);
  GnsEstimator gns(micro_all, N, study.gns.ema_beta);

  const int64_t P = model->num_params();
  auto init = model->init(mix_seed({study.seed, spec.seed, 0x1417u}));
  at::Tensor params = at::from_blob(init.data(), {P}, at::kFloat).to(device, false, true);
  if (resume) {
    if (static_cast<int64_t>(resume->params.size()) != P)
      throw std::invalid_argument("checkpoint holds " + std::to_string(resume->params.size()) +
                                  " parameters, the model has " + std::to_string(P));
    params.copy_(at::from_blob(const_cast<float*>(resume->params.data()), {P}, at::kFloat));
  }
  params.set_requires_grad(true);
  FlatOptimizer opt(study.optimizer, params);
  if (resume) {
    std::vector<at::Tensor> bufs;
    for (const auto& b : resume->opt_bufs)
      bufs.push_back(at::from_blob(const_cast<float*>(b.data()), {static_cast<int64_t>(b.size())}, at::kFloat));
    opt.restore(resume->opt_steps, bufs);
    gns.restore(resume->ema_tr, resume->ema_g2, resume->ema_beta_pow);
  }

  // One buffer carries the gradient and, in extra slots, every rank's loss and
  // squared norms (zero except at its own slots): one allreduce per step both
  // combines gradients and gives every rank all statistics, so the whole group
  // sees identical numbers and agrees on divergence without another message.
  // Extras: [loss_i (n) | s_i (n) | s_k per micro-batch (K) | per-layer s_k (K*L)
  //          | stop requested | checkpoint due]. The last two are flags any rank
  // raises (a signal; the leader's checkpoint timer): the sum makes the whole
  // group see them at the same step, so all ranks checkpoint and stop together.
  const int64_t F = 2 * n + K + K * L;  // first flag slot
  const int64_t E = F + 2;
  at::Tensor comm_buf = at::zeros({P + E}, params.options().requires_grad(false));
  at::Tensor grad_part = comm_buf.narrow(0, 0, P);
  at::Tensor extras = comm_buf.narrow(0, P, E);
  const int64_t log_every = study.log.every_steps;
  // Per-step scalars stay on the device until a log interval: no host sync
  // inside a step. Row: [extras (E) | S | per-layer S (L)].
  const int64_t R = E + 1 + L;
  at::Tensor ring = at::zeros({log_every, R}, params.options().requires_grad(false));
  std::vector<double> step_ms(static_cast<size_t>(log_every)), wall(static_cast<size_t>(log_every)),
      lrs(static_cast<size_t>(log_every));
  at::Tensor loss_i = at::zeros({1}, params.options().requires_grad(false));  // rank's mean loss
  const auto& slots = model->slots();
  auto layer_sqnorms = [&](const at::Tensor& g) {
    std::vector<at::Tensor> parts;
    for (const auto& sl : slots) parts.push_back(g.narrow(0, sl.offset, sl.numel()).pow(2).sum());
    return at::stack(parts);
  };

  RunResult result;
  int64_t eval_rows = 0;
  auto after_eval = [&](const EvalRecord& e) {
    ++eval_rows;
    result.best_val_acc = std::max(result.best_val_acc, e.val_acc);
    if (sink) sink->on_eval(e);
    // Eval numbers are reduced over the group, so every rank decides alike.
    if (result.target_step < 0 && study.target.enabled() && study.target.reached(e.val_loss, e.val_acc, e.train_loss)) {
      result.target_step = e.step;
      if (sink) sink->on_target(e.step, e.samples);
    }
  };
  auto target_stop = [&] { return result.target_step >= 0 && study.target.stop; };

  EvalRecord last_eval;
  int64_t step = 0;
  double wall_offset = 0;
  if (resume) {
    step = resume->step;
    eval_rows = resume->eval_rows;
    wall_offset = resume->wall_s;
    result.best_val_acc = resume->best_val_acc;
    result.target_step = resume->target_step;
    last_eval = resume->last_eval;
  } else {
    last_eval = eval_record(params, 0, B, N);
    result.best_val_acc = last_eval.val_acc;
    after_eval(last_eval);
  }

  at::Tensor perm;
  int64_t perm_epoch = -1;
  const auto t0 = Clock::now();
  auto last_ckpt = t0;
  int64_t pending = 0;  // rows in the ring not yet copied out
  bool diverged = false, stop_requested = false, ckpt_requested = false;

  auto drain = [&]() {
    if (pending == 0) return;
    comm.wait();
    at::Tensor host = ring.narrow(0, 0, pending).to(at::kCPU).to(at::kDouble).contiguous();
    const double* h = host.data_ptr<double>();
    std::vector<StepRecord> rows;
    for (int64_t k = 0; k < pending; ++k) {
      const double* row = h + k * R;
      const double* s_micro = row + 2 * n;
      const double S = row[E];
      StepRecord r;
      r.step = step - pending + k + 1;
      r.samples = r.step * B;
      r.epoch = static_cast<int32_t>(plan.epoch_of(r.step - 1));
      r.lr = lrs[static_cast<size_t>(k)];
      r.loss = 0;
      for (int i = 0; i < n; ++i) {
        r.loss += static_cast<double>(spec.batch_per_rank[static_cast<size_t>(i)]) / B * row[i];
        r.loss_rank.push_back(static_cast<float>(row[i]));
        r.sqnorm_local.push_back(static_cast<float>(row[n + i]));
      }
      for (int64_t q = 0; q < K; ++q) r.sqnorm_micro.push_back(static_cast<float>(s_micro[q]));
      for (int64_t q = 0; q < K * L; ++q) r.layer_micro.push_back(static_cast<float>(row[2 * n + K + q]));
      for (int64_t l = 0; l < L; ++l) r.layer_global.push_back(static_cast<float>(row[E + 1 + l]));
      r.sqnorm_global = static_cast<float>(S);
      GnsEstimate e = gns.update(s_micro, S);
      r.g2_est = e.g2;
      r.trsigma_est = e.trsigma;
      r.b_simple = e.b_simple;
      r.wall_s = wall[static_cast<size_t>(k)];
      r.step_ms = static_cast<float>(step_ms[static_cast<size_t>(k)]);
      if (row[F] > 0) stop_requested = true;
      if (row[F + 1] > 0) ckpt_requested = true;
      if (!diverged && (!std::isfinite(r.loss) || !std::isfinite(S))) {
        // Every rank holds the same reduced numbers, so all agree on this step.
        diverged = true;
        result.steps = r.step;
      }
      rows.push_back(std::move(r));
    }
    if (sink) sink->on_steps(rows);
    pending = 0;
  };

  // Called right after a drain, so the state matches the records delivered.
  auto checkpoint = [&]() {
    TrainState st;
    st.step = step;
    st.eval_rows = eval_rows;
    st.wall_s = wall_offset + std::chrono::duration<double>(Clock::now() - t0).count();
    st.best_val_acc = result.best_val_acc;
    st.target_step = result.target_step;
    st.last_eval = last_eval;
    auto to_host = [](const at::Tensor& t) {
      at::Tensor h = t.detach().to(at::kCPU).contiguous();
      return std::vector<float>(h.data_ptr<float>(), h.data_ptr<float>() + h.numel());
    };
    st.params = to_host(params);
    st.opt_steps = opt.steps();
    for (const auto& b : opt.buffers()) st.opt_bufs.push_back(to_host(b));
    gns.state(st.ema_tr, st.ema_g2, st.ema_beta_pow);
    if (sink) sink->on_checkpoint(st);
    last_ckpt = Clock::now();
    ckpt_requested = false;
  };
  const double ckpt_seconds = study.checkpoint.every_minutes * 60.0;

  while (step < budget.total_steps && !diverged && !target_stop()) {
    const auto ts = Clock::now();
    const int64_t epoch = plan.epoch_of(step);
    if (epoch != perm_epoch) {
      auto p = plan.epoch_permutation(epoch);
      perm = at::from_blob(p.data(), {N}, at::kLong).to(device, false, true);
      perm_epoch = epoch;
    }
    const double lr = lr_at(step, budget, study.optimizer);
    {
      at::NoGradGuard no_grad;
      extras.zero_();
      grad_part.zero_();
      if (stop_signal() != 0) extras.narrow(0, F, 1).fill_(1.0);
      if (me == 0 && ckpt_seconds > 0 &&
          std::chrono::duration<double>(Clock::now() - last_ckpt).count() >= ckpt_seconds)
        extras.narrow(0, F + 1, 1).fill_(1.0);
    }
    // Micro-batches accumulate g_i = sum_j (b_j / B_i) g_j, the gradient of the
    // rank's mean loss; with m = 1 this is a copy of the one gradient.
    int64_t offset = plan.offset(step, me);
    {
      at::NoGradGuard no_grad;
      loss_i.zero_();
    }
    for (int64_t j = 0; j < m; ++j) {
      const int64_t bj = micro_mine[static_cast<size_t>(j)];
      at::Tensor idx = perm.narrow(0, offset, bj);
      offset += bj;
      at::Tensor x = normalize(train, train.images.index_select(0, idx));
      at::Tensor y = train.labels.index_select(0, idx);
      at::Tensor loss = at::nll_loss(at::log_softmax(model->forward(params, x), 1), y);
      at::Tensor g = torch::autograd::grad({loss}, {params})[0];
      at::NoGradGuard no_grad;
      const double share = static_cast<double>(bj) / static_cast<double>(Bi);
      const int64_t q = me * m + j;
      extras.narrow(0, 2 * n + q, 1).copy_(g.pow(2).sum().reshape({1}));
      if (L > 0) extras.narrow(0, 2 * n + K + q * L, L).copy_(layer_sqnorms(g));
      grad_part.add_(g, share);
      loss_i.add_(loss.detach().reshape({1}), share);
    }
    {
      at::NoGradGuard no_grad;
      extras.narrow(0, me, 1).copy_(loss_i);
      extras.narrow(0, n + me, 1).copy_(grad_part.pow(2).sum().reshape({1}));
      grad_part.mul_(weight);  // pre-scale by B_i / B, then sum
      comm.allreduce_sum(comm_buf.data_ptr<float>(), static_cast<size_t>(P + E));
      at::Tensor slot = ring.select(0, pending);
      slot.narrow(0, 0, E).copy_(extras);
      slot.narrow(0, E, 1).copy_(grad_part.pow(2).sum().reshape({1}));
      if (L > 0) slot.narrow(0, E + 1, L).copy_(layer_sqnorms(grad_part));
      opt.step(params, grad_part, lr);
    }
    const auto te = Clock::now();
    step_ms[static_cast<size_t>(pending)] = std::chrono::duration<double, std::milli>(te - ts).count();
    wall[static_cast<size_t>(pending)] = wall_offset + std::chrono::duration<double>(te - t0).count();
    lrs[static_cast<size_t>(pending)] = lr;
    ++pending;
    ++step;
    const bool ckpt_step = study.checkpoint.every_steps > 0 && step % study.checkpoint.every_steps == 0;
    if (pending == log_every || ckpt_step) drain();
    if (diverged) break;
    const bool eval_due = budget.eval_every_steps > 0 && step % budget.eval_every_steps == 0;
    if (eval_due && step < budget.total_steps) {
      drain();
      if (diverged) break;
      last_eval = eval_record(params, step, B, N);
      after_eval(last_eval);
    }
    // After this step's evaluation, so a resumed run does not skip it.
    if (pending == 0 && (ckpt_requested || stop_requested || ckpt_step) && step < budget.total_steps &&
        !target_stop()) {
      checkpoint();
      if (stop_requested) break;
    }
  }
  drain();
  result.wall_s = wall_offset + std::chrono::duration<double>(Clock::now() - t0).count();
  if (diverged) {
    result.status = RunStatus::Diverged;
  } else if (stop_requested && step < budget.total_steps && !target_stop()) {
    result.status = RunStatus::Preempted;
    result.steps = step;
  } else {
    result.status = RunStatus::Completed;
    result.steps = step;
    if (last_eval.step != step) {  // a run stopped at its target was just evaluated
      last_eval = eval_record(params, step, B, N);
      after_eval(last_eval);
    }
  }
  result.final_eval = last_eval;
  result.samples = result.steps * B;
  result.samples_per_s = result.wall_s > 0 ? static_cast<double>(result.samples) / result.wall_s : 0;
  comm.wait();
  if (options.keep_final_params) {
    at::Tensor host = params.detach().to(at::kCPU).contiguous();
    result.final_params.assign(host.data_ptr<float>(), host.data_ptr<float>() + P);
  }
  return result;
}

Trainer::Trainer(const Study& study, const DataSplits& data, Communicator& comm, TrainerOptions options)
    : impl_(std::make_unique<Impl>(study, data, comm, options)) {}
Trainer::~Trainer() = default;
RunResult Trainer::run(const RunSpec& run, RecordSink* sink, const TrainState* resume) {
  return impl_->run(run, sink, resume);
}
int64_t Trainer::num_params() const { return impl_->model->num_params(); }
std::vector<std::string> Trainer::layer_names() const {
  std::vector<std::string> out;
  for (const auto& s : impl_->model->slots()) out.push_back(s.name);
  return out;
}
std::vector<int64_t> Trainer::layer_numel() const {
  std::vector<int64_t> out;
  for (const auto& s : impl_->model->slots()) out.push_back(s.numel());
  return out;
}

}  // namespace bs
