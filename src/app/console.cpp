#include "app/console.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace bs {

std::string format_duration(double s) {
  char buf[32];
  if (s < 0 || s != s) return "?";
  if (s < 90)
    std::snprintf(buf, sizeof buf, "%.0fs", s);
  else if (s < 5400) {
    const int m = static_cast<int>(s / 60);
    std::snprintf(buf, sizeof buf, "%dm%02ds", m, static_cast<int>(s) - 60 * m);
  } else
    std::snprintf(buf, sizeof buf, "%.1fh", s / 3600);
  return buf;
}

std::string progress_line(const ProgressState& p) {
  char buf[320];
  char acc[32] = "   -  ";
  if (p.val_acc >= 0) std::snprintf(acc, sizeof acc, "%.4f", p.val_acc);
  std::snprintf(buf, sizeof buf, "[%s] step %lld/%lld  epoch %d  loss %.4f  val_acc %s  %.0f samples/s  ETA %s",
                p.run.c_str(), static_cast<long long>(p.step), static_cast<long long>(p.total_steps), p.epoch, p.loss,
                acc, p.samples_per_s, format_duration(p.eta_s).c_str());
  return buf;
}

std::string SummaryRow::serialize() const {
  std::ostringstream os;
  os.precision(10);
  os << run << '\t' << global_batch << '\t' << ranks << '\t' << lr << '\t' << peak_lr << '\t' << seed << '\t' << status
     << '\t' << steps << '\t' << steps_to_target << '\t' << final_val_acc << '\t' << best_val_acc << '\t'
     << final_train_acc << '\t' << samples_per_s << '\t' << wall_s;
  return os.str();
}

SummaryRow SummaryRow::parse(const std::string& line) {
  std::istringstream is(line);
  SummaryRow r;
  std::getline(is, r.run, '\t');
  is >> r.global_batch >> r.ranks >> r.lr >> r.peak_lr >> r.seed;
  is.ignore(1);
  std::getline(is, r.status, '\t');
  is >> r.steps >> r.steps_to_target >> r.final_val_acc >> r.best_val_acc >> r.final_train_acc >> r.samples_per_s >>
      r.wall_s;
  return r;
}

std::string summary_table(const std::vector<SummaryRow>& rows_in) {
  auto rows = rows_in;
  std::sort(rows.begin(), rows.end(), [](const SummaryRow& a, const SummaryRow& b) {
    if (a.global_batch != b.global_batch) return a.global_batch < b.global_batch;
    if (a.lr != b.lr) return a.lr < b.lr;
    return a.seed < b.seed;
  });
  size_t w = 3;
  for (const auto& r : rows) w = std::max(w, r.run.size());
  std::ostringstream os;
  char buf[400];
  std::snprintf(buf, sizeof buf, "%-*s %7s %5s %9s %5s %-9s %7s %9s %8s %8s %8s %7s %10s %8s\n", static_cast<int>(w),
                "run", "batch", "ranks", "lr", "seed", "status", "steps", "to_target", "val_acc", "best", "train",
                "gap", "samples/s", "time");
  os << buf;
  for (const auto& r : rows) {
    char target[24] = "-";
    if (r.steps_to_target >= 0) std::snprintf(target, sizeof target, "%lld", static_cast<long long>(r.steps_to_target));
    std::snprintf(buf, sizeof buf, "%-*s %7lld %5d %9.4g %5llu %-9s %7lld %9s %8.4f %8.4f %8.4f %+7.4f %10.0f %8s\n",
                  static_cast<int>(w), r.run.c_str(), static_cast<long long>(r.global_batch), r.ranks, r.peak_lr,
                  static_cast<unsigned long long>(r.seed), r.status.c_str(), static_cast<long long>(r.steps), target,
                  r.final_val_acc, r.best_val_acc, r.final_train_acc, r.final_train_acc - r.final_val_acc,
                  r.samples_per_s, format_duration(r.wall_s).c_str());
    os << buf;
  }
  return os.str();
}

std::string GroupReport::serialize() const {
  std::ostringstream os;
  os.precision(10);
  os << group << '\t' << ranks << '\t' << busy_s << '\t' << asked << '\t' << wait_total_s << '\t' << wait_max_s;
  return os.str();
}

GroupReport GroupReport::parse(const std::string& line) {
  std::istringstream is(line);
  GroupReport g;
  is >> g.group >> g.ranks >> g.busy_s >> g.asked >> g.wait_total_s >> g.wait_max_s;
  return g;
}

double idle_fraction(const std::vector<GroupReport>& groups, double wall_s) {
  double busy = 0, ranks = 0;
  for (const auto& g : groups) {
    busy += g.ranks * g.busy_s;
    ranks += g.ranks;
  }
  return wall_s > 0 && ranks > 0 ? 1 - busy / (wall_s * ranks) : 0;
}

std::string utilization_lines(const std::vector<GroupReport>& groups, double wall_s) {
  double busy = 0, wait = 0, wait_max = 0;
  int ranks = 0, asked = 0;
  for (const auto& g : groups) {
    busy += g.ranks * g.busy_s;
    ranks += g.ranks;
    asked += g.asked;
    wait += g.wait_total_s;
    wait_max = std::max(wait_max, g.wait_max_s);
  }
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "group idle: %.1f%% of the study's rank-time (wall %.1f s x %d ranks in groups; inside runs %.1f "
                "rank-s)\n",
                100 * idle_fraction(groups, wall_s), wall_s, ranks, busy);
  std::string out = buf;
  if (asked > 0) {
    std::snprintf(buf, sizeof buf, "run queue: %d requests answered in %.1f ms on average, %.1f ms at most\n", asked,
                  1e3 * wait / asked, 1e3 * wait_max);
    out += buf;
  }
  return out;
}

namespace {

// A CSV number; a missing value (NaN: no accuracy in an mse run) is an empty
// field, as pandas and `batchscope-analysis summary --csv` read and write it.
std::string csv_number(double x) {
  if (!std::isfinite(x)) return "";
  std::ostringstream os;
  os.precision(10);
  os << x;
  return os.str();
}

}  // namespace

std::string summary_csv(const std::string& study, const std::vector<SummaryRow>& rows) {
  std::ostringstream os;
  os << "run,study,global_batch,ranks,base_lr,peak_lr,seed,status,steps,steps_to_target,final_val_acc,best_val_acc,"
        "final_train_acc,samples_per_s,wall_s\n";
  for (const auto& r : rows)
    os << r.run << ',' << study << ',' << r.global_batch << ',' << r.ranks << ',' << csv_number(r.lr) << ','
       << csv_number(r.peak_lr) << ',' << r.seed << ',' << r.status << ',' << r.steps << ','
       << (r.steps_to_target >= 0 ? std::to_string(r.steps_to_target) : "") << ',' << csv_number(r.final_val_acc) << ','
       << csv_number(r.best_val_acc) << ',' << csv_number(r.final_train_acc) << ',' << csv_number(r.samples_per_s)
       << ',' << csv_number(r.wall_s) << '\n';
  return os.str();
}

std::string describe_layout(const Study& study, const Layout& layout) {
  std::ostringstream os;
  os << "study '" << study.name << "': " << study.runs.size() << " runs on " << layout.world_size << " ranks in "
     << layout.groups.size() << " replica groups\n";
  for (const auto& g : layout.groups) {
    os << "group " << g.index << ": world ranks " << g.first_rank << ".." << g.first_rank + g.size - 1 << "\n";
    for (int ri : g.runs) {
      const auto& r = study.runs[static_cast<size_t>(ri)];
      RunBudget rb = run_budget(study, r);
      char lr[64];
      std::snprintf(lr, sizeof lr, "%g (base %g, %s scaling)", rb.peak_lr, r.lr, study.optimizer.scaling.c_str());
      os << "  run " << r.name << ": global batch " << r.global_batch() << ", lr " << lr << ", seed " << r.seed << ", "
         << rb.total_steps << " steps\n";
      for (int i = 0; i < r.ranks(); ++i)
        os << "    world rank " << g.first_rank + i << ": batch " << r.batch_per_rank[static_cast<size_t>(i)] << "\n";
    }
  }
  os << "each group starts with its first run above; the others go from a shared queue to whichever group of their "
        "size is free first, longest expected first as runs finish (the rest of each list assumes planned costs), so "
        "it is an estimate\n";
  if (!layout.idle_ranks.empty()) {
    os << "idle ranks (no group of their size has work):";
    for (int r : layout.idle_ranks) os << " " << r;
    os << "\n";
  }
  return os.str();
}

std::string describe_gpu_sharing(const Study& study, const Layout& layout, const std::vector<GpuShare>& shares) {
  if (shares.empty()) return "";
  std::ostringstream os;
  os << "GPU sharing: " << layout.groups.size() << " replica groups on " << shares.size() << " GPU"
     << (shares.size() == 1 ? "" : "s") << "; groups on one GPU train at once, each in its own process\n";
  for (const auto& sh : shares) {
    os << "  " << sh.gpu << ": group" << (sh.groups.size() == 1 ? "" : "s");
    std::string first;
    for (size_t i = 0; i < sh.groups.size(); ++i) {
      const GroupPlan& g = layout.groups[static_cast<size_t>(sh.groups[i])];
      os << (i ? ", " : " ") << g.index;
      if (!g.runs.empty()) first += (first.empty() ? "" : ", ") + study.runs[static_cast<size_t>(g.runs[0])].name;
    }
    os << (first.empty() ? "" : " (first runs: " + first + ")") << "\n";
  }
  return os.str();
}

namespace {

// Edit distance counting a swap of two neighbours as one edit (optimal
// string alignment): "rnu" is one edit from "run".
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

}  // namespace

std::string nearest_name(const std::string& word, const std::vector<std::string>& names) {
  std::string best;
  size_t best_d = std::max<size_t>(1, (word.size() + 2) / 3) + 1;  // the first distance that is too far
  for (const auto& n : names) {
    const size_t d = edit_distance(word, n);
    if (d < best_d) {
      best_d = d;
      best = n;
    }
  }
  return best;
}

std::string study_progress_line(const StudyCounts& c) {
  const int queued = std::max(0, c.total - c.done - c.running);
  std::ostringstream os;
  os << "study: " << c.done << "/" << c.total << " runs done, " << c.running << " running, " << queued << " queued";
  if (c.done < c.total) {
    const double rate = c.elapsed_s > 0 ? c.samples_trained / c.elapsed_s : 0;
    os << "; ETA " << (rate > 0 ? format_duration(c.samples_left / rate) : "? (no run finished yet)");
  }
  return os.str();
}

}  // namespace bs
