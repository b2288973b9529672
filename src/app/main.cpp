#include "app/commands.h"

int main(int argc, char** argv) { return bs::main_entry(argc, argv); }
