#pragma once
// Strict, message-friendly access to a YAML tree: every key that is looked up
// is remembered, present or not, so a key nobody looked up (a typo) is reported
// with the valid ones, and every type error names the dotted key and the line.
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

namespace bs {

// Applies "a.b.c=value" (value parsed as YAML; "null" removes the key).
void apply_override(YAML::Node& root, const std::string& assignment, const std::string& file);

// Throws ConfigError when a mapping anywhere under `node` gives the same key
// twice: yaml-cpp keeps both and every lookup reads the first, so the other
// would be ignored without a word. `prefix` is the dotted key of `node` ("" for
// a whole study file); the error names the file, the dotted key and both
// places. Call it on a freshly parsed document, whose nodes carry their marks.
void reject_duplicate_keys(const YAML::Node& node, const std::string& file, const std::string& prefix);

class Section {
 public:
  // overridden: dotted keys set by --set, so messages say "from --set" rather
  // than a line number of the value's own one-line document.
  Section(const YAML::Node& node, std::string path, std::string file,
          std::shared_ptr<const std::set<std::string>> overridden = nullptr);

  bool has(const std::string& key) const;
  std::string str(const std::string& key, const std::string& def) const;
  std::string choice(const std::string& key, const std::string& def, const std::vector<std::string>& valid) const;
  int64_t integer(const std::string& key, int64_t def) const;
  double number(const std::string& key, double def) const;
  bool boolean(const std::string& key, bool def) const;
  std::vector<int64_t> int_list(const std::string& key) const;
  std::vector<double> number_list(const std::string& key) const;
  Section sub(const std::string& key) const;             // an empty mapping if absent
  Section item(const std::string& key, size_t i) const;  // entry i of the list at key, named key[i]
  YAML::Node raw(const std::string& key) const;

  // Throws for any key of this mapping that no lookup above asked for, naming
  // the keys that were asked for. Call it after the section's last lookup and
  // before checking values, so that a misspelt key is reported before the
  // error its absence causes (a missing budget, a default that does not fit).
  void reject_unread() const;
  // Every dotted key looked up so far, by this section and the sections taken
  // from it, in first-lookup order; list entries are named key[i].
  const std::vector<std::string>& keys_read() const { return *read_; }

  std::string key(const std::string& k) const { return path_.empty() ? k : path_ + "." + k; }
  const std::string& file() const { return file_; }
  [[noreturn]] void fail(const std::string& k, const std::string& what) const;

 private:
  Section(const YAML::Node& node, std::string path, std::string file,
          std::shared_ptr<const std::set<std::string>> overridden, std::shared_ptr<std::vector<std::string>> read);
  // Whether the section is given; throws when it is given as something other
  // than a mapping. Checked on use, not on construction, so that sections taken
  // together are still reported in the order they are parsed.
  bool given() const;
  void note(const std::string& k) const;
  std::vector<std::string> read_here() const;  // the keys looked up directly under this section
  std::string where(const std::string& k, const YAML::Node& n) const;
  // A list (or a single scalar, read as a one-item list) of T; `kind` names T
  // in messages, `example` shows a valid value.
  template <typename T>
  std::vector<T> list(const std::string& k, const char* kind, const char* example) const;
  YAML::Node node_;
  std::string path_, file_;
  std::shared_ptr<const std::set<std::string>> overridden_;
  // Shared by a section and those taken from it. Lookups are bookkeeping, not
  // the section's value, so const reads record them through the pointer.
  std::shared_ptr<std::vector<std::string>> read_;
};

}  // namespace bs
