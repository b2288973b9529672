#pragma once
// Strict, message-friendly access to a YAML tree: every key that is read is
// remembered, so unknown keys (typos) are reported with the valid ones, and
// every type error names the dotted key and the line.
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace bs {

// Applies "a.b.c=value" (value parsed as YAML; "null" removes the key).
void apply_override(YAML::Node& root, const std::string& assignment, const std::string& file);

class Section {
 public:
  // overridden: dotted keys set by --set, so messages say "from --set" rather
  // than a line number of the value's own one-line document.
  Section(const YAML::Node& node, std::string path, std::string file,
          std::shared_ptr<const std::set<std::string>> overridden = nullptr);

  bool has(const std::string& key) const;
  std::string str(const std::string& key, const std::string& def) const;
  std::string choice(const std::string& key, const std::string& def,
                     const std::vector<std::string>& valid) const;
  int64_t integer(const std::string& key, int64_t def) const;
  double number(const std::string& key, double def) const;
  bool boolean(const std::string& key, bool def) const;
  std::vector<int64_t> int_list(const std::string& key) const;
  std::vector<double> number_list(const std::string& key) const;
  Section sub(const std::string& key) const;  // an empty mapping if absent
  YAML::Node raw(const std::string& key) const;

  // Throws for any key not in `known`, naming the valid keys.
  void reject_unknown(const std::vector<std::string>& known) const;

  std::string key(const std::string& k) const { return path_.empty() ? k : path_ + "." + k; }
  const std::string& file() const { return file_; }
  [[noreturn]] void fail(const std::string& k, const std::string& what) const;

 private:
  std::string where(const std::string& k, const YAML::Node& n) const;
  // A list (or a single scalar, read as a one-item list) of T; `kind` names T
  // in messages, `example` shows a valid value.
  template <typename T>
  std::vector<T> list(const std::string& k, const char* kind, const char* example) const;
  YAML::Node node_;
  std::string path_, file_;
  std::shared_ptr<const std::set<std::string>> overridden_;
};

}  // namespace bs
