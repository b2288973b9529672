#include "util/errors.h"

namespace bs {

ConfigError::ConfigError(const std::string& file, const std::string& key, const std::string& reason)
    : std::runtime_error(file + (key.empty() ? std::string() : ": key '" + key + "'") + ": " + reason),
      file_(file),
      key_(key),
      reason_(reason) {}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += sep;
    out += items[i];
  }
  return out;
}

}  // namespace bs
