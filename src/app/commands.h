#pragma once
// The CLI: `check`, `plan`, `run`, `bench`, `version`. Exit codes are documented in the
// README: 0 ok, 1 internal error, 2 bad study / command line / rank layout,
// 3 bad data, 4 MPI or HDF5 failure, 5 output folder problem.
namespace bs {
int main_entry(int argc, char** argv);
}
