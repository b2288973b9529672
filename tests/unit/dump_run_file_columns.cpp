// Prints the run-file column table (src/trace/run_file_columns.cpp) as JSON,
// for tests/unit/check_run_file_columns.py, which holds docs/run-file.md and
// analysis/batchscope_analysis/schema.py to it.
#include <iostream>
#include <string>

#include "trace/run_file_columns.h"

namespace {

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

const char* rows_name(bs::ColumnRows r) {
  switch (r) {
    case bs::ColumnRows::Header:
      return "header";
    case bs::ColumnRows::Single:
      return "single";
    case bs::ColumnRows::Step:
      return "step";
    case bs::ColumnRows::Eval:
      return "eval";
    case bs::ColumnRows::Final:
      return "final";
  }
  return "?";
}

void print_column(const bs::RunFileColumn& c) {
  std::cout << "{\"group\": " << quoted(c.group) << ", \"name\": " << quoted(c.name)
            << ", \"dtype\": " << quoted(bs::column_type_name(c.type)) << ", \"rows\": " << quoted(rows_name(c.rows))
            << ", \"shape\": [";
  const auto shape = bs::column_shape(c);
  for (size_t i = 0; i < shape.size(); ++i) std::cout << (i ? ", " : "") << quoted(shape[i]);
  std::cout << "], \"per_layer\": " << (c.per_layer ? "true" : "false") << ", \"doc\": " << quoted(c.doc) << "}";
}

}  // namespace

int main() {
  const auto& cols = bs::run_file_columns();
  std::cout << "{\"columns\": [\n";
  for (size_t i = 0; i < cols.size(); ++i) {
    std::cout << "  ";
    print_column(cols[i]);
    std::cout << (i + 1 < cols.size() ? ",\n" : "\n");
  }
  std::cout << "]}\n";
  return 0;
}
