#pragma once
// The end-of-study summary: one row per run, whether it trained in this job
// or finished in an earlier one (then read back from its run file), printed
// as a table and written to <output>/summary.csv.
#include <string>
#include <vector>

#include "app/console.h"
#include "config/study.h"
#include "train/trainer.h"

namespace bs {

SummaryRow summary_row(const Study& study, const RunSpec& run, const RunResult& result);
// A run that finished in an earlier job: its row comes from its file.
SummaryRow summary_from_file(const Study& study, const RunSpec& run, const std::string& path);
// Rank 0: the table (rows in study order), summary.csv, the groups' idle
// share of the study's rank-time over `wall_s` and the run queue's answer
// times, and where the files are.
void print_summary(const Study& study, const std::vector<SummaryRow>& rows, const std::vector<GroupReport>& groups,
                   double wall_s);

}  // namespace bs
