#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <stdexcept>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/csrc/autograd/autograd.h>

#include "data/batch_plan.h"
#include "gpu/cuda_runtime.h"
#include "models/model.h"
#include "noise/estimator.h"
#include "train/device_data.h"
#include "train/optimizer.h"
#include "train/schedule.h"
#include "train/sharpness.h"
#include "train/sqnorm.h"
#include "train/stats_layout.h"
#include "train/step_graph.h"
#include "util/errors.h"
#include "util/rng.h"
#include "util/signals.h"

namespace bs {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<float> to_host_floats(const at::Tensor& t) {
  at::Tensor h = t.detach().to(at::kCPU).contiguous();
  return std::vector<float>(h.data_ptr<float>(), h.data_ptr<float>() + h.numel());
}

}  // namespace

struct Trainer::Impl {
  const Study& study;
  Communicator& comm;
  TrainerOptions options;
  at::Device device{at::kCPU};
  DeviceSplit train, test;
  at::Tensor train_eval_idx;
  at::Tensor sharpness_idx;  // eval.sharpness: the first samples of train_eval_idx (undefined when off)
  std::unique_ptr<Model> model;
  Objective objective;

  Impl(const Study& st, const DataSplits& data, Communicator& c, TrainerOptions o)
      : study(st), comm(c), options(o), objective(st.model) {
    check_loss_fits(st.file, st.model.loss, data);
    if (o.gpu >= 0) {
      use_gpu(o.gpu);
      require_fits_device(data.train, data.test, gpu::free_memory(), device.str());
    }
    train = to_device(data.train, device);
    test = to_device(data.test, device);
    auto idx = train_eval_indices(data.train.size, st.eval.train_subset, st.seed);
    train_eval_idx = at::from_blob(idx.data(), {static_cast<int64_t>(idx.size())}, at::kLong).to(device, false, true);
    if (st.eval.sharpness.enabled())
      sharpness_idx = train_eval_idx.narrow(0, 0, std::min<int64_t>(st.eval.sharpness.samples, train_eval_idx.size(0)));
    model = make_model(st.file, st.model, model_shape(data.train), device);
    // A model that does not fit the data fails here, before any run starts.
    auto init = model->init(0);
    at::Tensor flat = at::from_blob(init.data(), {model->num_params()}, at::kFloat).to(device, false, true);
    check_output(st.file, st.model, *model, flat, train, data.train.num_classes);
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
    const int64_t total = idx.defined() ? idx.size(0) : split.size();
    const int64_t n = comm.size(), r = comm.rank();
    const int64_t begin = total * r / n, end = total * (r + 1) / n;
    // Sums stay on the device across chunks and through the reduction: one
    // host copy per evaluation. [loss sum, correct, count]
    at::Tensor acc = at::zeros({3}, split.y.options().dtype(at::kDouble));
    model->set_training(false);
    for (int64_t b = begin; b < end; b += study.eval.batch) {
      const int64_t len = std::min(study.eval.batch, end - b);
      at::Tensor x, y;
      if (idx.defined()) {
        at::Tensor sel = idx.narrow(0, b, len);
        x = split.inputs(sel);
        y = split.targets(sel);
      } else {
        x = split.inputs(b, len);
        y = split.targets(b, len);
      }
      objective.add_sums(model->forward(params, x), y, acc);
    }
    model->set_training(true);
    acc.narrow(0, 2, 1).fill_(static_cast<double>(end - begin));
    comm.allreduce_sum(acc.data_ptr<double>(), 3);
    comm.wait();
    at::Tensor host = acc.to(at::kCPU);
    const double* sums = host.data_ptr<double>();
    if (sums[2] == 0) return {std::nan(""), std::nan("")};
    return {sums[0] / sums[2], objective.classifies() ? sums[1] / sums[2] : std::nan("")};
  }

  // eval.sharpness at these parameters: this rank's shard of the subset
  // (an equal share per rank), its product summed over the group, the model
  // in evaluation mode (BatchNorm's running statistics, no dropout).
  SharpnessResult sharpness(const at::Tensor& params, uint64_t seed) {
    const int64_t total = sharpness_idx.size(0), n = comm.size(), r = comm.rank();
    const at::Tensor mine = sharpness_idx.narrow(0, total * r / n, total * (r + 1) / n - total * r / n);
    const int64_t chunk = std::min<int64_t>(study.eval.batch, 512);
    const HessianProduct hvp = [&](const at::Tensor& v) {
      at::Tensor hv = shard_hvp(*model, objective, params, train, mine, total, chunk, v).contiguous();
      if (n > 1) {
        comm.allreduce_sum(hv.data_ptr<float>(), static_cast<size_t>(hv.numel()));
        comm.wait();
      }
      return hv;
    };
    model->set_training(false);
    SharpnessResult res = top_eigenvalue(hvp, sharpness_start(model->num_params(), seed, device), study.eval.sharpness);
    model->set_training(true);
    return res;
  }

  EvalRecord eval_record(const at::Tensor& params, int64_t step, int64_t B, int64_t N) {
    EvalRecord e;
    e.step = step;
    e.samples = step * B;
    e.epoch = static_cast<double>(e.samples) / static_cast<double>(N);
    std::tie(e.val_loss, e.val_acc) = evaluate(params, test, at::Tensor());
    if (train_eval_idx.size(0) > 0)
      std::tie(e.train_loss, e.train_acc) = evaluate(params, train, train_eval_idx);
    else
      e.train_loss = e.train_acc = std::nan("");
    return e;
  }
};

// One run of the group, as named steps in the shape of google/benchmark's
// BenchmarkRunner: state lives in members, each phase is a method. A step is
// prepare_batch → forward_backward (per micro-batch) → reduce_local (this
// rank's statistics) → allreduce → reduce_global (the ring row) → optimize;
// between steps, drain the ring, evaluate and checkpoint. Under CUDA graphs
// (graph_step) the same methods are captured once and replayed. The order of tensor operations is the numerical
// contract (split invisibility and exact resume are bit-exact tests): change it knowingly.
class RunLoop {
 public:
  RunLoop(Trainer::Impl& t, const RunSpec& spec, RecordSink* sink, const TrainState* resume);
  RunResult run();

 private:
  void start(const TrainState* resume);
  void restore(const TrainState& s);
  void prepare_batch();
  void eager_step();
  void graph_step();
  void capture();
  void forward_backward();
  void reduce_local();
  void allreduce();
  void reduce_global(const at::Tensor& row, const double* sq_global = nullptr);
  void optimize();
  bool fused_optimize(const at::Tensor& row);
  bool after_step();  // false: leave the loop
  void drain();
  void evaluate_now();
  void add_sharpness(EvalRecord& e) const;
  void on_eval(const EvalRecord& e);
  void checkpoint();
  void finish();
  bool target_stop() const { return result_.target_step >= 0 && t_.study.target.stop; }
  at::Tensor flat_gradient(const std::vector<at::Tensor>& grads, int64_t q);
  bool flat_copy_with_norm(const std::vector<at::Tensor>& grads, const at::Tensor& out, const at::Tensor& sq) const;
  void accumulate(const at::Tensor& g, double share, int64_t j);
  at::Tensor sqnorm(const at::Tensor& g);
  at::Tensor layer_sqnorms(const at::Tensor& g) const;
  void average_buffers();
  std::vector<double> saved_buffers() const;
  void restore_buffers(const std::vector<double>& saved);
  at::Tensor no_grad_zeros(at::IntArrayRef shape) const {
    return at::zeros(shape, params_.options().requires_grad(false));
  }

  Trainer::Impl& t_;
  const Study& study_;
  const RunSpec& spec_;
  RecordSink* sink_;
  const int n_, me_;
  const RunBudget budget_;
  const int64_t N_;
  const BatchPlan plan_;
  const int64_t B_, Bi_, m_;
  const std::vector<int64_t> micro_mine_;
  const float weight_;  // B_i / B: the pre-scale that makes the sum a sample-weighted mean
  const StatsLayout layout_;
  const int64_t log_every_;
  const double ckpt_seconds_;
  const bool seeds_model_;                 // the model may draw random numbers (a TorchScript module)
  const std::vector<at::Tensor> buffers_;  // the model's live buffers (BatchNorm statistics)
  GnsEstimator gns_;
  at::Tensor params_;
  std::unique_ptr<FlatOptimizer> opt_;
  const bool stats_;  // the noise statistics (norms); off only to measure their cost
  at::Tensor comm_buf_, grad_part_, extras_, ring_, loss_i_, square_, micro_grad_;
  // CUDA graphs: the kernels of a step read fixed addresses, so the batch's
  // indices and the ring row pass through buffers kept for the run.
  const bool graphs_;
  at::Tensor idx_buf_, row_, batch_;  // batch_: this step's indices (idx_buf_ under graphs, else a view of perm_)
  std::unique_ptr<StepGraph> pre_graph_, post_graph_;  // post_graph_: groups of 2+ ranks, after the allreduce
  int64_t first_step_ = 0;                             // the loop's first step is eager
  std::vector<double> step_ms_, wall_, lrs_;           // host side of the ring rows

  RunResult result_;
  EvalRecord last_eval_;
  int64_t eval_rows_ = 0, step_ = 0, pending_ = 0;  // pending: ring rows not yet copied out
  double wall_offset_ = 0, lr_ = 0;
  at::Tensor perm_;
  int64_t perm_epoch_ = -1;
  Clock::time_point t0_, last_ckpt_;
  bool diverged_ = false, stop_requested_ = false, ckpt_requested_ = false;
};

RunLoop::RunLoop(Trainer::Impl& t, const RunSpec& spec, RecordSink* sink, const TrainState* resume)
    : t_(t),
      study_(t.study),
      spec_(spec),
      sink_(sink),
      n_(t.comm.size()),
      me_(t.comm.rank()),
      budget_(run_budget(t.study, spec)),
      N_(t.train.size()),
      plan_(N_, spec.batch_per_rank, t.study.seed, spec.seed),
      B_(plan_.global_batch()),
      Bi_(plan_.length(me_)),
      m_(t.study.gns.microbatches),
      micro_mine_(micro_batches(Bi_, m_)),
      weight_(static_cast<float>(Bi_) / static_cast<float>(B_)),
      layout_(t.model->num_params(), n_, m_, t.study.gns.per_layer ? static_cast<int64_t>(t.model->slots().size()) : 0),
      log_every_(t.study.log.every_steps),
      ckpt_seconds_(t.study.checkpoint.every_minutes * 60.0),
      seeds_model_(t.model->init_source() != "builtin"),
      buffers_(t.model->buffers()),
      gns_(micro_batches(spec.batch_per_rank, m_), N_, t.study.gns.step_beta(B_)),
      stats_(t.options.noise_statistics),
      graphs_(t.options.graphs && t.options.gpu >= 0),
      step_ms_(static_cast<size_t>(log_every_)),
      wall_(static_cast<size_t>(log_every_)),
      lrs_(static_cast<size_t>(log_every_)) {
  start(resume);
}

// Parameters from the run's seed or the checkpoint, the optimizer and the
// noise estimator's state, the step buffers, then the step-0 evaluation of a
// fresh run.
void RunLoop::start(const TrainState* resume) {
  const int64_t P = layout_.params();
  auto init = t_.model->init(mix_seed({study_.seed, spec_.seed, 0x1417u}));
  params_ = at::from_blob(init.data(), {P}, at::kFloat).to(t_.device, false, true);
  if (resume) {
    if (static_cast<int64_t>(resume->params.size()) != P)
      throw CheckpointError("checkpoint holds " + std::to_string(resume->params.size()) +
                            " parameters, the model has " + std::to_string(P));
    params_.copy_(at::from_blob(const_cast<float*>(resume->params.data()), {P}, at::kFloat));
  }
  params_.set_requires_grad(true);
  OptimizerSpec opt = study_.optimizer;
  opt.beta2 = budget_.beta2;  // optimizer.beta2_scaling
  opt_ = std::make_unique<FlatOptimizer>(opt, params_);
  comm_buf_ = no_grad_zeros({layout_.buffer()});
  grad_part_ = comm_buf_.narrow(0, 0, P);
  extras_ = comm_buf_.narrow(0, P, layout_.extras());
  if (!sqnorm_kernel_applies(comm_buf_)) square_ = no_grad_zeros({P});  // sqnorm's buffer off the CPU kernel
  if (m_ > 1) micro_grad_ = no_grad_zeros({P});
  // Per-step scalars stay on the device until a log interval: no host sync
  // inside a step.
  ring_ = no_grad_zeros({log_every_, layout_.row_width()});
  loss_i_ = no_grad_zeros({1});  // this rank's mean loss
  if (graphs_) {
    idx_buf_ = at::zeros({Bi_}, params_.options().dtype(at::kLong).requires_grad(false));
    row_ = no_grad_zeros({layout_.row_width()});
  }
  if (resume) {
    restore(*resume);
  } else {
    t_.model->reset_buffers();
    last_eval_ = t_.eval_record(params_, 0, B_, N_);
    add_sharpness(last_eval_);
    result_.best_val_acc = last_eval_.val_acc;
    on_eval(last_eval_);
  }
}

// The rest of a checkpoint's state (the parameters are restored by start):
// the model's buffers, the optimizer, the noise estimator, the counters.
void RunLoop::restore(const TrainState& s) {
  restore_buffers(s.buffers);
  std::vector<at::Tensor> bufs;
  for (const auto& b : s.opt_bufs)
    bufs.push_back(at::from_blob(const_cast<float*>(b.data()), {static_cast<int64_t>(b.size())}, at::kFloat));
  opt_->restore(s.opt_steps, bufs);
  gns_.restore(s.ema_tr, s.ema_g2, s.ema_beta_pow);
  step_ = s.step;
  eval_rows_ = s.eval_rows;
  wall_offset_ = s.wall_s;
  result_.best_val_acc = s.best_val_acc;
  result_.target_step = s.target_step;
  last_eval_ = s.last_eval;
}

RunResult RunLoop::run() {
  t0_ = Clock::now();
  last_ckpt_ = t0_;
  first_step_ = step_;
  while (step_ < budget_.total_steps && !diverged_ && !target_stop()) {
    const auto ts = Clock::now();
    prepare_batch();
    if (graphs_ && step_ > first_step_)
      graph_step();
    else
      eager_step();
    const auto te = Clock::now();
    const auto k = static_cast<size_t>(pending_);
    step_ms_[k] = std::chrono::duration<double, std::milli>(te - ts).count();
    wall_[k] = wall_offset_ + std::chrono::duration<double>(te - t0_).count();
    lrs_[k] = lr_;
    ++pending_;
    ++step_;
    if (!after_step()) break;
  }
  finish();
  return std::move(result_);
}

// The epoch's permutation (once per epoch), the lr, cleared buffers and the
// flags this rank raises.
void RunLoop::prepare_batch() {
  const int64_t epoch = plan_.epoch_of(step_);
  if (epoch != perm_epoch_) {
    auto p = plan_.epoch_permutation(epoch);
    perm_ = at::from_blob(p.data(), {N_}, at::kLong).to(t_.device, false, true);
    perm_epoch_ = epoch;
  }
  lr_ = lr_at(step_, budget_, study_.optimizer);
  at::NoGradGuard no_grad;
  const at::Tensor batch = perm_.narrow(0, plan_.offset(step_, me_), Bi_);
  if (graphs_) idx_buf_.copy_(batch);
  batch_ = graphs_ ? idx_buf_ : batch;
  extras_.zero_();  // grad_part_ is overwritten by the first micro-batch
  if (stop_signal() != 0) extras_.narrow(0, layout_.stop_flag(), 1).fill_(1.0);
  if (me_ == 0 && ckpt_seconds_ > 0 &&
      std::chrono::duration<double>(Clock::now() - last_ckpt_).count() >= ckpt_seconds_)
    extras_.narrow(0, layout_.checkpoint_flag(), 1).fill_(1.0);
}

// Micro-batches accumulate g_i = sum_j (b_j / B_i) g_j, the gradient of the
// rank's mean loss; with m = 1 this is a copy of the one gradient. Each
// micro-batch's squared norms go to its own slots (the noise estimator's
// small batches).
void RunLoop::eager_step() {
  forward_backward();
  reduce_local();
  allreduce();
  const at::Tensor row = ring_.select(0, pending_);
  if (fused_optimize(row)) return;
  reduce_global(row);
  optimize();
}

// The step replayed: the optimizer's scalars first (the graph reads them),
// then one graph, or two around the allreduce, which stays outside so the
// NCCL watchdog (and host-staged MPI) work as in eager steps. Replays queue on
// the default stream, like eager kernels, so the communicators' ordering is
// unchanged. Same kernels, same inputs: the same numbers as eager_step.
void RunLoop::graph_step() {
  if (!pre_graph_) capture();
  opt_->prepare(lr_);
  pre_graph_->replay();
  allreduce();
  if (post_graph_) post_graph_->replay();
  at::NoGradGuard no_grad;
  ring_.select(0, pending_).copy_(row_);
}

// The part before the allreduce is warmed up for real on the capture stream
// (it only overwrites what its replay overwrites again); the optimizer's part
// is not, since it updates the parameters.
void RunLoop::capture() {
  const auto pre = [this] {
    forward_backward();
    reduce_local();
  };
  const auto post = [this] {
    reduce_global(row_);
    at::NoGradGuard no_grad;
    opt_->apply(params_, grad_part_);
  };
  if (n_ == 1) {
    pre_graph_ = capture_step_graph(t_.options.gpu, pre, [&] {
      pre();
      post();
    });
  } else {
    pre_graph_ = capture_step_graph(t_.options.gpu, pre, pre);
    post_graph_ = capture_step_graph(t_.options.gpu, nullptr, post);
  }
}

void RunLoop::forward_backward() {
  int64_t offset = 0;
  {
    at::NoGradGuard no_grad;
    loss_i_.zero_();
  }
  for (int64_t j = 0; j < m_; ++j) {
    const int64_t bj = micro_mine_[static_cast<size_t>(j)];
    at::Tensor idx = batch_.narrow(0, offset, bj);
    offset += bj;
    at::Tensor x = t_.train.inputs(idx);
    at::Tensor y = t_.train.targets(idx);
    // A module's randomness (dropout) depends on the run, rank, step and
    // micro-batch only, so a resumed run draws what the uninterrupted one did.
    if (seeds_model_)
      at::manual_seed(mix_seed({study_.seed, spec_.seed, static_cast<uint64_t>(me_), static_cast<uint64_t>(step_),
                                static_cast<uint64_t>(j)}));
    const std::vector<at::Tensor> w = t_.model->views(params_);
    at::Tensor loss = t_.objective.mean_loss(t_.model->forward(w, x), y);
    const int64_t q = me_ * m_ + j;
    const at::Tensor g = flat_gradient(torch::autograd::grad({loss}, w), q);
    at::NoGradGuard no_grad;
    const double share = static_cast<double>(bj) / static_cast<double>(Bi_);
    if (stats_ && layout_.layers() > 0)
      extras_.narrow(0, layout_.layer_micro(q), layout_.layers()).copy_(layer_sqnorms(g));
    accumulate(g, share, j);
    loss_i_.add_(loss.detach().reshape({1}), share);
  }
}

// The slots' gradients (taken with respect to the views, so autograd does
// not concatenate them) written into one flat buffer: with one micro-batch
// straight into the reduction buffer, where g_i = g (the same bits as the
// concatenation, one P-float pass less), else into a buffer kept for the run.
// With the noise statistics, |g|^2 goes to micro-batch q's slot.
at::Tensor RunLoop::flat_gradient(const std::vector<at::Tensor>& grads, int64_t q) {
  at::NoGradGuard no_grad;
  at::Tensor out = m_ == 1 ? grad_part_ : micro_grad_;
  const at::Tensor sq = extras_.narrow(0, layout_.sq_micro(q), 1);
  if (stats_ && flat_copy_with_norm(grads, out, sq)) return out;
  const auto parts = t_.model->views(out);
  for (size_t k = 0; k < grads.size(); ++k) parts[k].copy_(grads[k]);
  if (stats_) sq.copy_(sqnorm(out));
  return out;
}

// The copy and |g|^2 in one pass over the P floats, for a CPU float32
// buffer: each block is summed while still in cache (train/sqnorm.h), the
// same bits as sqnorm(out) after the copy. Why: a gradient past the cache
// was read twice; `bench --pair stats`, cnn batch 32 (13 MB), 2 ranks: 1.022
// -> 1.012 (the mlp's 2.1 MB stay in cache: no change).
// A gradient the kernel cannot read (a channels-last convolution's) is
// copied by LibTorch first; the pass then sums it where it lies. False,
// having done nothing, for a buffer off the CPU.
bool RunLoop::flat_copy_with_norm(const std::vector<at::Tensor>& grads, const at::Tensor& out,
                                  const at::Tensor& sq) const {
  const auto& slots = t_.model->slots();
  if (!sqnorm_kernel_applies(out)) return false;
  std::vector<FlatPiece> pieces;
  for (size_t k = 0; k < grads.size(); ++k) {
    if (sqnorm_kernel_applies(grads[k]))
      pieces.push_back({grads[k].data_ptr<float>(), slots[k].offset, slots[k].numel()});
    else
      out.narrow(0, slots[k].offset, slots[k].numel()).view(grads[k].sizes()).copy_(grads[k]);
  }
  sq.fill_(sqnorm_to_float(copy_sum_squares_blocked(pieces, out.data_ptr<float>(), out.numel())));
  return true;
}

// grad_part_ += share * g. The first micro-batch writes instead of adding to
// zeros (the same bits: 0 + x is x), which saves clearing the P floats every
// step; with one micro-batch g already is grad_part_.
void RunLoop::accumulate(const at::Tensor& g, double share, int64_t j) {
  if (g.is_same(grad_part_)) return;
  if (j > 0) {
    grad_part_.add_(g, share);
  } else {
    at::mul_out(grad_part_, g, at::scalar_tensor(share, g.options()));
  }
}

// |g|^2. CPU gradients take one read pass, summed in float64 in a fixed order
// (train/sqnorm.h). Elsewhere (CUDA, where a step may be a captured graph) as
// pow(2).sum() computes it, a tensor with no host sync, squaring into a buffer
// kept for the run instead of a fresh P-float temporary per norm.
at::Tensor RunLoop::sqnorm(const at::Tensor& g) {
  if (sqnorm_kernel_applies(g)) return cpu_sqnorm(g);
  at::mul_out(square_, g, g);
  return square_.sum().reshape({1});
}

// This rank's loss and |g_i|^2 into its slots, the gradient pre-scaled by
// B_i / B, ready for the one sum over the group.
void RunLoop::reduce_local() {
  at::NoGradGuard no_grad;
  extras_.narrow(0, layout_.loss(me_), 1).copy_(loss_i_);
  // With one micro-batch g_i is that micro-batch's gradient: its norm is known.
  if (stats_)
    extras_.narrow(0, layout_.sq_local(me_), 1)
        .copy_(m_ == 1 ? extras_.narrow(0, layout_.sq_micro(me_), 1) : sqnorm(grad_part_));
  // x * 1 is x: a group of one rank skips the pass over the gradient.
  if (weight_ != 1.f) grad_part_.mul_(weight_);
}

// One rank's sum is its own buffer, so a 1-rank group skips the call (the
// same bits, one launch less, and one graph per step instead of two).
void RunLoop::allreduce() {
  if (n_ > 1) t_.comm.allreduce_sum(comm_buf_.data_ptr<float>(), static_cast<size_t>(layout_.buffer()));
}

// The ring row keeps the reduced statistics and the global norms until the
// next drain; |G|^2 is computed here unless given.
void RunLoop::reduce_global(const at::Tensor& row, const double* sq_global) {
  at::NoGradGuard no_grad;
  row.narrow(0, 0, layout_.extras()).copy_(extras_);
  if (!stats_) return;
  const at::Tensor slot = row.narrow(0, layout_.sq_global(), 1);
  if (sq_global)
    slot.fill_(sqnorm_to_float(*sq_global));
  else
    slot.copy_(sqnorm(grad_part_));
  if (layout_.layers() > 0) row.narrow(0, layout_.layer_global(), layout_.layers()).copy_(layer_sqnorms(grad_part_));
}

void RunLoop::optimize() {
  at::NoGradGuard no_grad;
  opt_->step(params_, grad_part_, lr_);
}

// reduce_global then optimize, for SGD on the CPU with the update and |G|^2
// in one pass over the gradient (FlatOptimizer::fused_step): the same row
// and parameters. The update leaves the gradient as it was, so the row's
// per-layer norms can follow it.
bool RunLoop::fused_optimize(const at::Tensor& row) {
  at::NoGradGuard no_grad;
  double sq = 0;
  if (!opt_->fused_step(params_, grad_part_, lr_, stats_ ? &sq : nullptr)) return false;
  reduce_global(row, &sq);
  return true;
}

// Drains the ring when full or at a checkpoint step, evaluates when due, and
// checkpoints after this step's evaluation, so a resumed run does not skip it.
bool RunLoop::after_step() {
  const bool ckpt_step = study_.checkpoint.every_steps > 0 && step_ % study_.checkpoint.every_steps == 0;
  if (pending_ == log_every_ || ckpt_step) drain();
  if (diverged_) return false;
  const bool eval_due = budget_.eval_every_steps > 0 && step_ % budget_.eval_every_steps == 0;
  if (eval_due && step_ < budget_.total_steps) {
    drain();
    if (diverged_) return false;
    evaluate_now();
  }
  if (pending_ == 0 && (ckpt_requested_ || stop_requested_ || ckpt_step) && step_ < budget_.total_steps &&
      !target_stop()) {
    checkpoint();
    if (stop_requested_) return false;
  }
  return true;
}

// One device-to-host copy for the pending rows; every rank decodes the same
// reduced numbers, so all agree on the flags and on divergence.
void RunLoop::drain() {
  if (pending_ == 0) return;
  t_.comm.wait();
  at::Tensor host = ring_.narrow(0, 0, pending_).to(at::kCPU).to(at::kDouble).contiguous();
  const double* h = host.data_ptr<double>();
  std::vector<StepRecord> rows;
  for (int64_t k = 0; k < pending_; ++k) {
    const double* row = h + k * layout_.row_width();
    const auto hk = static_cast<size_t>(k);
    StepRecord r;
    r.step = step_ - pending_ + k + 1;
    r.samples = r.step * B_;
    r.epoch = static_cast<int32_t>(plan_.epoch_of(r.step - 1));
    r.lr = lrs_[hk];
    layout_.decode(row, spec_.batch_per_rank, B_, r);
    GnsEstimate e = gns_.update(row + layout_.sq_micro(0), row[layout_.sq_global()]);
    r.g2_est = e.g2;
    r.trsigma_est = e.trsigma;
    r.b_simple = e.b_simple;
    r.wall_s = wall_[hk];
    r.step_ms = static_cast<float>(step_ms_[hk]);
    if (layout_.stop_raised(row)) stop_requested_ = true;
    if (layout_.checkpoint_raised(row)) ckpt_requested_ = true;
    if (!diverged_ && (!std::isfinite(r.loss) || !std::isfinite(row[layout_.sq_global()]))) {
      diverged_ = true;
      result_.steps = r.step;
    }
    rows.push_back(std::move(r));
  }
  if (sink_) sink_->on_steps(rows);
  pending_ = 0;
  average_buffers();
}

void RunLoop::evaluate_now() {
  last_eval_ = t_.eval_record(params_, step_, B_, N_);
  add_sharpness(last_eval_);
  on_eval(last_eval_);
}

// At every eval.sharpness.every-th evaluation after step 0's (the 0th), and
// at step 0's with at_start: the sharpness at initialization is the same for
// every run of a seed, and measuring it doubled the cost of a 1-epoch study.
// eval_rows_ is restored on resume, so a resumed run measures at the same
// ones. A pure function of the parameters and the start vector's seed
// (study seed, run seed, step): nothing to checkpoint.
void RunLoop::add_sharpness(EvalRecord& e) const {
  const SharpnessSpec& sp = study_.eval.sharpness;
  if (!sp.enabled() || !t_.sharpness_idx.defined()) return;
  if (eval_rows_ == 0 ? !sp.at_start : eval_rows_ % sp.every != 0) return;
  const SharpnessResult r =
      t_.sharpness(params_, mix_seed({study_.seed, spec_.seed, static_cast<uint64_t>(e.step), 0x5ba7u}));
  e.sharpness = r.value;
  e.sharpness_iterations = r.iterations;
  e.sharpness_residual = r.residual;
}

void RunLoop::on_eval(const EvalRecord& e) {
  ++eval_rows_;
  result_.best_val_acc = std::max(result_.best_val_acc, e.val_acc);
  if (sink_) sink_->on_eval(e);
  // Eval numbers are reduced over the group, so every rank decides alike.
  if (result_.target_step < 0 && study_.target.enabled() &&
      study_.target.reached(e.val_loss, e.val_acc, e.train_loss)) {
    result_.target_step = e.step;
    if (sink_) sink_->on_target(e.step, e.samples);
  }
}

// Called right after a drain, so the state matches the records delivered.
void RunLoop::checkpoint() {
  TrainState st;
  st.step = step_;
  st.eval_rows = eval_rows_;
  st.wall_s = wall_offset_ + std::chrono::duration<double>(Clock::now() - t0_).count();
  st.best_val_acc = result_.best_val_acc;
  st.target_step = result_.target_step;
  st.last_eval = last_eval_;
  st.params = to_host_floats(params_);
  st.opt_steps = opt_->steps();
  for (const auto& b : opt_->buffers()) st.opt_bufs.push_back(to_host_floats(b));
  gns_.state(st.ema_tr, st.ema_g2, st.ema_beta_pow);
  st.buffers = saved_buffers();
  if (sink_) sink_->on_checkpoint(st);
  last_ckpt_ = Clock::now();
  ckpt_requested_ = false;
}

// The last rows, the status, the final evaluation of a completed run, and the
// totals.
void RunLoop::finish() {
  drain();
  result_.wall_s = wall_offset_ + std::chrono::duration<double>(Clock::now() - t0_).count();
  if (diverged_) {
    result_.status = RunStatus::Diverged;
  } else if (stop_requested_ && step_ < budget_.total_steps && !target_stop()) {
    result_.status = RunStatus::Preempted;
    result_.steps = step_;
  } else {
    result_.status = RunStatus::Completed;
    result_.steps = step_;
    if (last_eval_.step != step_) evaluate_now();  // a run stopped at its target was just evaluated
  }
  result_.final_eval = last_eval_;
  result_.samples = result_.steps * B_;
  result_.samples_per_s = result_.wall_s > 0 ? static_cast<double>(result_.samples) / result_.wall_s : 0;
  t_.comm.wait();
  if (t_.options.keep_final_params) result_.final_params = to_host_floats(params_);
}

// |g|^2 per slot, by sqnorm's kernel on CPU gradients, else pow(2).sum().
at::Tensor RunLoop::layer_sqnorms(const at::Tensor& g) const {
  const bool kernel = sqnorm_kernel_applies(g);
  std::vector<at::Tensor> parts;
  for (const auto& sl : t_.model->slots()) {
    const at::Tensor part = g.narrow(0, sl.offset, sl.numel());
    parts.push_back(kernel ? cpu_sqnorm(part) : part.pow(2).sum().reshape({1}));
  }
  return at::cat(parts);
}

// BatchNorm statistics are per rank. Every drain (so before every evaluation
// and checkpoint, which follow one) replaces them with their sample-weighted
// mean over the group, so all ranks evaluate alike and a checkpoint holds
// what the uninterrupted run continues with. Counters (int) agree already.
void RunLoop::average_buffers() {
  if (n_ == 1 || buffers_.empty()) return;
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> parts;
  for (const auto& b : buffers_)
    if (b.is_floating_point()) parts.push_back(b.to(at::kDouble).flatten());
  if (parts.empty()) return;
  at::Tensor all = at::cat(parts).mul_(static_cast<double>(Bi_) / static_cast<double>(B_));
  t_.comm.allreduce_sum(all.data_ptr<double>(), static_cast<size_t>(all.numel()));
  t_.comm.wait();
  int64_t off = 0;
  for (const auto& b : buffers_) {
    if (!b.is_floating_point()) continue;
    b.copy_(all.narrow(0, off, b.numel()).view(b.sizes()));
    off += b.numel();
  }
}

std::vector<double> RunLoop::saved_buffers() const {
  std::vector<double> out;
  for (const auto& b : buffers_) {
    at::Tensor h = b.detach().to(at::kCPU).to(at::kDouble).contiguous();
    out.insert(out.end(), h.data_ptr<double>(), h.data_ptr<double>() + h.numel());
  }
  return out;
}

void RunLoop::restore_buffers(const std::vector<double>& saved) {
  int64_t total = 0;
  for (const auto& b : buffers_) total += b.numel();
  if (static_cast<int64_t>(saved.size()) != total)
    throw CheckpointError("checkpoint holds " + std::to_string(saved.size()) +
                          " buffer values (BatchNorm statistics), the model has " + std::to_string(total));
  at::NoGradGuard no_grad;
  at::Tensor all = at::from_blob(const_cast<double*>(saved.data()), {total}, at::kDouble);
  int64_t off = 0;
  for (const auto& b : buffers_) {
    b.copy_(all.narrow(0, off, b.numel()).view(b.sizes()));
    off += b.numel();
  }
}

Trainer::Trainer(const Study& study, const DataSplits& data, Communicator& comm, TrainerOptions options)
    : impl_(std::make_unique<Impl>(study, data, comm, options)) {}
Trainer::~Trainer() = default;
RunResult Trainer::run(const RunSpec& run, RecordSink* sink, const TrainState* resume) {
  if (run.ranks() != impl_->comm.size())
    throw LayoutError("run '" + run.name + "' needs " + std::to_string(run.ranks()) + " ranks, but its group has " +
                      std::to_string(impl_->comm.size()));
  return RunLoop(*impl_, run, sink, resume).run();
}
void Trainer::set_noise_statistics(bool on) { impl_->options.noise_statistics = on; }
int64_t Trainer::num_params() const { return impl_->model->num_params(); }
std::vector<std::string> Trainer::layer_names() const {
  std::vector<std::string> out;
  for (const auto& s : impl_->model->slots()) out.push_back(s.name);
  return out;
}
std::vector<std::string> Trainer::buffer_names() const { return impl_->model->buffer_names(); }
std::string Trainer::init_source() const { return impl_->model->init_source(); }
std::vector<int64_t> Trainer::sharpness_subset() const {
  const at::Tensor& idx = impl_->sharpness_idx;
  if (!idx.defined()) return {};
  const at::Tensor h = idx.to(at::kCPU).contiguous();
  return std::vector<int64_t>(h.data_ptr<int64_t>(), h.data_ptr<int64_t>() + h.numel());
}
std::vector<int64_t> Trainer::layer_numel() const {
  std::vector<int64_t> out;
  for (const auto& s : impl_->model->slots()) out.push_back(s.numel());
  return out;
}

}  // namespace bs
