#include "app/run_summary.h"

#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>

#include "trace/run_file.h"

namespace bs {

SummaryRow summary_row(const Study& st, const RunSpec& r, const RunResult& res) {
  SummaryRow s;
  s.run = r.name;
  s.global_batch = r.global_batch();
  s.ranks = r.ranks();
  s.lr = r.lr;
  s.peak_lr = run_budget(st, r).peak_lr;
  s.seed = r.seed;
  s.status = status_name(res.status);
  s.steps = res.steps;
  s.steps_to_target = res.target_step;
  s.final_val_acc = res.final_eval.val_acc;
  s.best_val_acc = res.best_val_acc;
  s.final_train_acc = res.final_eval.train_acc;
  s.samples_per_s = res.samples_per_s;
  s.wall_s = res.wall_s;
  return s;
}

SummaryRow summary_from_file(const Study& st, const RunSpec& r, const std::string& path) {
  const RunFileSummary f = read_run_summary(path);
  RunResult res;
  res.status = f.status;
  res.steps = f.steps;
  res.target_step = f.target_step;
  res.final_eval.val_acc = f.val_acc.back();  // NaN when the run never evaluated
  for (double a : f.val_acc) res.best_val_acc = std::max(res.best_val_acc, a);
  res.final_eval.train_acc = f.final_train_acc;
  res.wall_s = f.wall_s;
  res.samples_per_s = res.wall_s > 0 ? static_cast<double>(res.steps * r.global_batch()) / res.wall_s : 0;
  return summary_row(st, r, res);
}

void print_summary(const Study& st, const std::vector<SummaryRow>& rows_in, const std::vector<GroupReport>& groups,
                   double wall_s) {
  // Rows arrive as groups finish runs; the table and the file list them in
  // study order, whichever group trained what.
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < st.runs.size(); ++i) index[st.runs[i].name] = i;
  auto rows = rows_in;
  std::stable_sort(rows.begin(), rows.end(),
                   [&index](const SummaryRow& a, const SummaryRow& b) { return index[a.run] < index[b.run]; });
  std::cout << "\n" << summary_table(rows) << utilization_lines(groups, wall_s);
  std::ofstream(st.output + "/summary.csv") << summary_csv(st.name, rows);
  std::cout << "run files: " << st.output << "/runs/*.h5, summary: " << st.output << "/summary.csv" << std::endl;
}

}  // namespace bs
