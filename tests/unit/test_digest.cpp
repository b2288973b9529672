// File digests (the model.file and data.file keys of a checkpoint's
// fingerprint): the same bytes give the same digest, any changed byte or size
// another, and an unreadable file is a DataError naming it.
#include <cstdio>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "helpers.h"
#include "util/digest.h"

namespace bs {
namespace {

using test::TempDir;

std::string write(const TempDir& d, const std::string& name, const std::string& bytes) {
  const std::string p = d.file(name);
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
  return p;
}

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// Bytes that are not all alike, over several read blocks (1 MiB each) and not
// a whole number of them.
std::string big() {
  std::string s((size_t{3} << 20) + 7, '\0');
  uint64_t x = 88172645463325252ULL;
  for (char& c : s) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    c = static_cast<char>(x);
  }
  return s;
}

TEST(Digest, Fnv1a64MatchesThePublishedValues) {
  EXPECT_EQ(fnv1a64("", 0), 0xcbf29ce484222325ULL);
  EXPECT_EQ(fnv1a64("a", 1), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(fnv1a64("foobar", 6), 0x85944171f73967e8ULL);
  EXPECT_EQ(fnv1a64("bar", 3, fnv1a64("foo", 3)), fnv1a64("foobar", 6)) << "continues from a running hash";
}

TEST(Digest, SaysTheSizeAndTheHash) {
  TempDir d;
  EXPECT_EQ(file_digest(write(d, "a", "foobar")), "6 bytes, fnv1a64 85944171f73967e8");
  EXPECT_EQ(file_digest(write(d, "empty", "")), "0 bytes, fnv1a64 cbf29ce484222325");
}

TEST(Digest, SameBytesInTwoFilesGiveTheSameDigest) {
  TempDir d;
  const std::string bytes = big();
  const std::string a = file_digest(write(d, "a.pt", bytes));
  EXPECT_EQ(a, file_digest(write(d, "b.pt", bytes))) << "the name is not part of the digest";
  EXPECT_EQ(a, std::to_string(bytes.size()) + " bytes, fnv1a64 " + hex(fnv1a64(bytes.data(), bytes.size())))
      << "reading in blocks hashes the bytes as one run";
}

TEST(Digest, OneChangedByteChangesIt) {
  TempDir d;
  std::string bytes = big();
  const std::string p = write(d, "set.h5", bytes);
  const std::string before = file_digest(p);
  for (size_t at : {size_t{0}, size_t{1} << 20, bytes.size() - 1}) {
    std::string changed = bytes;
    changed[at] = static_cast<char>(changed[at] ^ 0x01);
    write(d, "set.h5", changed);
    const std::string after = file_digest(p);
    EXPECT_NE(after, before) << "byte " << at;
    EXPECT_EQ(after.substr(0, after.find(',')), std::to_string(bytes.size()) + " bytes") << "same size";
  }
}

TEST(Digest, OneMoreByteChangesTheSize) {
  TempDir d;
  EXPECT_EQ(file_digest(write(d, "a", std::string(10, 'x'))).rfind("10 bytes, ", 0), 0u);
  EXPECT_EQ(file_digest(write(d, "a", std::string(11, 'x'))).rfind("11 bytes, ", 0), 0u);
}

void expect_data_error(const std::string& p, const std::string& words) {
  try {
    file_digest(p);
    FAIL() << "took a digest of " << p;
  } catch (const DataError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(p), std::string::npos) << "names the file: " << m;
    EXPECT_NE(m.find(words), std::string::npos) << m;
  }
}

TEST(Digest, MissingFileIsADataErrorNamingIt) {
  TempDir d;
  expect_data_error(d.file("no_such_model.pt"), "No such file or directory");
}

TEST(Digest, FolderIsADataErrorNamingIt) {
  TempDir d;
  expect_data_error(d.path().string(), "Is a directory");
}

}  // namespace
}  // namespace bs
