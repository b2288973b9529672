#include "config/yaml_tree.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "util/errors.h"

namespace bs {
namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t pos = s.find(sep, start);
    out.push_back(s.substr(start, pos == std::string::npos ? std::string::npos : pos - start));
    if (pos == std::string::npos) break;
    start = pos + 1;
  }
  return out;
}

std::string line_of(const YAML::Node& n) {
  auto m = n.Mark();
  return m.line >= 0 ? " (line " + std::to_string(m.line + 1) + ")" : std::string();
}

std::string scalar_text(const YAML::Node& n) {
  if (n.IsScalar()) return "'" + n.Scalar() + "'";
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a mapping";
  return "nothing";
}

// Where a key was given twice: two lines, or two columns of one line (a
// --set value, or a flow mapping written on one line).
std::string both_places(const YAML::Mark& a, const YAML::Mark& b) {
  if (a.line != b.line) return "lines " + std::to_string(a.line + 1) + " and " + std::to_string(b.line + 1);
  return "line " + std::to_string(a.line + 1) + ", columns " + std::to_string(a.column + 1) + " and " +
         std::to_string(b.column + 1);
}

// Depth first; `seen` holds the text positions of the collections already
// walked, so one reached again through an alias is walked once.
void check_unique_keys(const YAML::Node& node, const std::string& path, const std::string& file, std::set<int>& seen) {
  if (!node.IsMap() && !node.IsSequence()) return;
  const int pos = node.Mark().pos;
  if (pos >= 0 && !seen.insert(pos).second) return;
  if (node.IsSequence()) {
    size_t i = 0;
    for (const auto& item : node) check_unique_keys(item, path + "[" + std::to_string(i++) + "]", file, seen);
    return;
  }
  std::map<std::string, YAML::Mark> first;  // key -> where it was first given
  for (const auto& kv : node) {
    const std::string k = kv.first.IsScalar() ? kv.first.Scalar() : YAML::Dump(kv.first);
    std::string dotted = path;
    if (!dotted.empty()) dotted += '.';
    dotted += k;
    const auto [at, fresh] = first.emplace(k, kv.first.Mark());
    if (!fresh)
      throw ConfigError(file, dotted,
                        "given twice, at " + both_places(at->second, kv.first.Mark()) +
                            "; a mapping takes each key once: remove one of them");
    check_unique_keys(kv.second, dotted, file, seen);
  }
}

// One --set, split up: `where` names the file and the assignment as typed,
// `path` the dotted key, `parts` its components.
struct Assignment {
  std::string where, path;
  std::vector<std::string> parts;
  YAML::Node value;
};

Assignment parse_assignment(const std::string& assignment, const std::string& file) {
  Assignment a;
  a.where = file + " (--set " + assignment + ")";
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError(a.where, "", "expected --set KEY=VALUE, e.g. --set budget.steps=50");
  a.path = assignment.substr(0, eq);
  a.parts = split(a.path, '.');
  for (auto& p : a.parts)
    if (p.empty()) throw ConfigError(a.where, a.path, "empty component in dotted key");
  try {
    a.value = YAML::Load(assignment.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    throw ConfigError(a.where, a.path, "value is not valid YAML: " + std::string(e.what()));
  }
  reject_duplicate_keys(a.value, a.where, a.path);
  return a;
}

// The entry of `list` that component `p` of the assignment indexes.
size_t list_index(const YAML::Node& list, const std::string& p, const Assignment& a) {
  size_t idx = 0;
  try {
    idx = std::stoul(p);
  } catch (...) {
    throw ConfigError(a.where, a.path, "'" + p + "' indexes a list: use a number");
  }
  if (idx >= list.size())
    throw ConfigError(a.where, a.path,
                      "index " + p + " out of range (list has " + std::to_string(list.size()) + " items)");
  return idx;
}

// Entry parts[i] of the mapping `cur`, made an empty mapping when missing or null.
YAML::Node child_mapping(YAML::Node& cur, size_t i, const Assignment& a) {
  const std::string& p = a.parts[i];
  if (!cur.IsMap() && !cur.IsNull())
    throw ConfigError(a.where, a.path, "'" + join({a.parts.begin(), a.parts.begin() + i}, ".") + "' is not a mapping");
  YAML::Node next = cur[p];
  if (!next.IsDefined() || next.IsNull()) {
    cur[p] = YAML::Node(YAML::NodeType::Map);
    next = cur[p];
  }
  return next;
}

// The node that holds the assignment's last component. reset() rebinds
// `cur`; assigning to it would overwrite the node it refers to.
YAML::Node parent_of(YAML::Node& root, const Assignment& a) {
  YAML::Node cur;
  cur.reset(root);
  for (size_t i = 0; i + 1 < a.parts.size(); ++i) {
    YAML::Node next = cur.IsSequence() ? cur[list_index(cur, a.parts[i], a)] : child_mapping(cur, i, a);
    cur.reset(next);
  }
  return cur;
}

}  // namespace

void reject_duplicate_keys(const YAML::Node& node, const std::string& file, const std::string& prefix) {
  std::set<int> seen;
  check_unique_keys(node, prefix, file, seen);
}

void apply_override(YAML::Node& root, const std::string& assignment, const std::string& file) {
  const Assignment a = parse_assignment(assignment, file);
  YAML::Node cur = parent_of(root, a);
  const std::string& last = a.parts.back();
  if (cur.IsSequence()) {
    cur[list_index(cur, last, a)] = a.value;
    return;
  }
  // yaml-cpp would throw BadSubscript here: an internal error, not a bad --set.
  if (!cur.IsMap() && !cur.IsNull())
    throw ConfigError(a.where, a.path, "'" + join({a.parts.begin(), a.parts.end() - 1}, ".") + "' is not a mapping");
  if (a.value.IsNull()) {
    if (cur.IsMap()) cur.remove(last);
  } else {
    cur[last] = a.value;
  }
}

Section::Section(const YAML::Node& node, std::string path, std::string file,
                 std::shared_ptr<const std::set<std::string>> overridden)
    : Section(node, std::move(path), std::move(file), std::move(overridden),
              std::make_shared<std::vector<std::string>>()) {}

Section::Section(const YAML::Node& node, std::string path, std::string file,
                 std::shared_ptr<const std::set<std::string>> overridden,
                 std::shared_ptr<std::vector<std::string>> read)
    : node_(node),
      path_(std::move(path)),
      file_(std::move(file)),
      overridden_(std::move(overridden)),
      read_(std::move(read)) {}

bool Section::given() const {
  if (!node_.IsDefined() || node_.IsNull()) return false;
  if (!node_.IsMap())
    throw ConfigError(file_, path_, "expected a mapping of keys, got " + scalar_text(node_) + line_of(node_));
  return true;
}

void Section::note(const std::string& k) const {
  const std::string full = key(k);
  if (std::find(read_->begin(), read_->end(), full) == read_->end()) read_->push_back(full);
}

std::vector<std::string> Section::read_here() const {
  const std::string prefix = path_.empty() ? std::string() : path_ + ".";
  std::vector<std::string> out;
  for (const auto& full : *read_)
    if (full.compare(0, prefix.size(), prefix) == 0 && full.find('.', prefix.size()) == std::string::npos)
      out.push_back(full.substr(prefix.size()));
  return out;
}

std::string Section::where(const std::string& k, const YAML::Node& n) const {
  if (overridden_) {
    const std::string full = key(k);
    for (const auto& o : *overridden_)
      if (full == o || full.rfind(o + ".", 0) == 0 || o.rfind(full + ".", 0) == 0) return " (from --set)";
  }
  return n.IsDefined() ? line_of(n) : std::string();
}

void Section::fail(const std::string& k, const std::string& what) const {
  throw ConfigError(file_, key(k), what + where(k, raw(k)));
}

YAML::Node Section::raw(const std::string& k) const {
  note(k);
  if (!given()) return YAML::Node(YAML::NodeType::Undefined);
  const YAML::Node& c = node_;
  return c[k];
}

bool Section::has(const std::string& k) const {
  YAML::Node n = raw(k);
  return n.IsDefined() && !n.IsNull();
}

std::string Section::str(const std::string& k, const std::string& def) const {
  if (!has(k)) return def;
  YAML::Node n = raw(k);
  if (!n.IsScalar()) fail(k, "expected a string, got " + scalar_text(n));
  return n.Scalar();
}

std::string Section::choice(const std::string& k, const std::string& def, const std::vector<std::string>& valid) const {
  std::string v = str(k, def);
  if (std::find(valid.begin(), valid.end(), v) == valid.end())
    fail(k, "'" + v + "' is not valid; expected one of: " + join(valid, ", "));
  return v;
}

int64_t Section::integer(const std::string& k, int64_t def) const {
  if (!has(k)) return def;
  YAML::Node n = raw(k);
  try {
    if (!n.IsScalar()) throw YAML::Exception(YAML::Mark(), "");
    return n.as<int64_t>();
  } catch (const YAML::Exception&) {
    fail(k, "expected an integer, got " + scalar_text(n));
  }
}

double Section::number(const std::string& k, double def) const {
  if (!has(k)) return def;
  YAML::Node n = raw(k);
  try {
    if (!n.IsScalar()) throw YAML::Exception(YAML::Mark(), "");
    double v = n.as<double>();
    if (!std::isfinite(v)) fail(k, "expected a finite number, got " + scalar_text(n));
    return v;
  } catch (const YAML::Exception&) {
    fail(k, "expected a number, got " + scalar_text(n));
  }
}

bool Section::boolean(const std::string& k, bool def) const {
  if (!has(k)) return def;
  YAML::Node n = raw(k);
  try {
    if (!n.IsScalar()) throw YAML::Exception(YAML::Mark(), "");
    return n.as<bool>();
  } catch (const YAML::Exception&) {
    fail(k, "expected true or false, got " + scalar_text(n));
  }
}

template <typename T>
std::vector<T> Section::list(const std::string& k, const char* kind, const char* example) const {
  std::vector<T> out;
  if (!has(k)) return out;
  YAML::Node n = raw(k);
  if (n.IsScalar()) n = YAML::Load("[" + n.Scalar() + "]");
  if (!n.IsSequence())
    fail(k, std::string("expected a list of ") + kind + "s, e.g. " + example + ", got " + scalar_text(n));
  for (size_t i = 0; i < n.size(); ++i) {
    try {
      out.push_back(n[i].as<T>());
    } catch (const YAML::Exception&) {
      fail(k, "item " + std::to_string(i) + " is " + scalar_text(n[i]) + ", expected " +
                  (kind[0] == 'i' ? "an " : "a ") + kind);
    }
  }
  return out;
}

std::vector<int64_t> Section::int_list(const std::string& k) const { return list<int64_t>(k, "integer", "[32, 64]"); }

std::vector<double> Section::number_list(const std::string& k) const { return list<double>(k, "number", "[0.1, 0.2]"); }

Section Section::sub(const std::string& k) const { return Section(raw(k), key(k), file_, overridden_, read_); }

Section Section::item(const std::string& k, size_t i) const {
  const YAML::Node list = raw(k);
  return Section(list[i], key(k) + "[" + std::to_string(i) + "]", file_, overridden_, read_);
}

void Section::reject_unread() const {
  if (!given()) return;
  const std::vector<std::string> known = read_here();
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    std::string k = it->first.as<std::string>();
    if (std::find(known.begin(), known.end(), k) == known.end())
      throw ConfigError(file_, key(k),
                        "unknown key" + where(k, it->first) + "; valid keys " +
                            (path_.empty() ? "at the top level" : "under '" + path_ + "'") + ": " + join(known, ", "));
  }
}

}  // namespace bs
