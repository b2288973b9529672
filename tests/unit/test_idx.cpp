// data/idx (the IDX reader, raw and gzip) and data/dataset's loading of the
// four IDX files: small files written here, in the big-endian IDX format, and
// read back; malformed files give a DataError that names the file and what is
// wrong.
#include <algorithm>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <zlib.h>

#include "data/dataset.h"
#include "data/idx.h"
#include "helpers.h"
#include "util/errors.h"

namespace bs {
namespace {

using test::TempDir;
using Bytes = std::vector<uint8_t>;

// An unsigned-byte IDX file: magic 00 00 08 <ndims>, each dimension as a
// big-endian uint32, then the data.
Bytes idx_bytes(const std::vector<uint32_t>& dims, const Bytes& data) {
  Bytes b = {0, 0, 0x08, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims)
    for (int shift : {24, 16, 8, 0}) b.push_back(static_cast<uint8_t>(d >> shift));
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

Bytes iota_bytes(size_t n, uint8_t start = 0) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(start + i * 7);
  return b;
}

void write_raw(const std::string& path, const Bytes& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  ASSERT_TRUE(f.good()) << path;
}

void write_gz(const std::string& path, const Bytes& b) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(gzwrite(f, b.data(), static_cast<unsigned>(b.size())), static_cast<int>(b.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

// read_idx(path) throws a DataError whose message names the file and says `words`.
void expect_data_error(const std::string& path, const std::string& words) {
  try {
    IdxArray a = read_idx(path);
    FAIL() << path << " was read (" << a.dims.size() << " dims), expected: " << words;
  } catch (const DataError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(path), std::string::npos) << "the message names the file: " << m;
    EXPECT_NE(m.find(words), std::string::npos) << m;
  }
}

TEST(ReadIdx, RawImagesRoundTrip) {
  TempDir d;
  const Bytes data = iota_bytes(3 * 2 * 5, 1);
  write_raw(d.file("images"), idx_bytes({3, 2, 5}, data));
  IdxArray a = read_idx(d.file("images"));
  EXPECT_EQ(a.dims, (std::vector<int64_t>{3, 2, 5}));
  EXPECT_EQ(a.data, data);
}

TEST(ReadIdx, GzipLabelsRoundTrip) {
  TempDir d;
  const Bytes labels = {0, 9, 3, 3, 7, 1};
  write_gz(d.file("labels.gz"), idx_bytes({6}, labels));
  IdxArray a = read_idx(d.file("labels.gz"));
  EXPECT_EQ(a.dims, (std::vector<int64_t>{6}));
  EXPECT_EQ(a.data, labels);
}

TEST(ReadIdx, DimensionsAreBigEndian) {
  TempDir d;
  // 258 = 0x00000102: a little-endian reader would see 0x02010000.
  write_raw(d.file("wide"), idx_bytes({1, 258}, iota_bytes(258)));
  IdxArray a = read_idx(d.file("wide"));
  EXPECT_EQ(a.dims, (std::vector<int64_t>{1, 258}));
  EXPECT_EQ(a.data.size(), 258u);
  // The high bytes count too (65536 + 1 items).
  write_gz(d.file("long.gz"), idx_bytes({65537}, iota_bytes(65537)));
  EXPECT_EQ(read_idx(d.file("long.gz")).dims, (std::vector<int64_t>{65537}));
}

TEST(ReadIdx, MissingFile) {
  TempDir d;
  expect_data_error(d.file("absent"), "cannot open");
}

TEST(ReadIdx, BadMagic) {
  TempDir d;
  Bytes floats = idx_bytes({2}, {1, 2});
  floats[2] = 0x0D;  // IDX float data
  write_raw(d.file("float"), floats);
  expect_data_error(d.file("float"), "bad magic");
  Bytes nonzero = idx_bytes({2}, {1, 2});
  nonzero[0] = 1;
  write_raw(d.file("nonzero"), nonzero);
  expect_data_error(d.file("nonzero"), "bad magic");
  Bytes nodims = idx_bytes({}, {});
  write_raw(d.file("nodims"), nodims);
  expect_data_error(d.file("nodims"), "bad magic");
  write_raw(d.file("text"), Bytes{'h', 'e', 'l', 'l', 'o', ',', ' ', 'w', 'o', 'r', 'l', 'd'});
  expect_data_error(d.file("text"), "bad magic");
}

TEST(ReadIdx, TruncatedHeader) {
  TempDir d;
  write_raw(d.file("empty"), {});
  expect_data_error(d.file("empty"), "truncated IDX file (header");
  write_raw(d.file("short"), {0, 0, 8});
  expect_data_error(d.file("short"), "truncated IDX file (header");
}

TEST(ReadIdx, TruncatedDimensions) {
  TempDir d;
  Bytes b = idx_bytes({3, 28, 28}, {});
  b.resize(4 + 4 + 2);  // the second dimension is cut
  write_raw(d.file("dims"), b);
  expect_data_error(d.file("dims"), "truncated IDX file (dimensions");
}

// The header promises more items than the file holds (a cut download).
TEST(ReadIdx, FewerItemsThanTheHeaderCounts) {
  TempDir d;
  Bytes b = idx_bytes({4, 3, 3}, iota_bytes(4 * 9));
  b.resize(b.size() - 5);
  write_raw(d.file("images"), b);
  expect_data_error(d.file("images"), "truncated IDX file (data: expected 36 bytes, got 31)");
  // The same file gzip-compressed.
  write_gz(d.file("images.gz"), b);
  expect_data_error(d.file("images.gz"), "truncated IDX file (data: expected 36 bytes, got 31)");
}

TEST(ReadIdx, ZeroDimension) {
  TempDir d;
  write_raw(d.file("zero"), idx_bytes({5, 0}, {}));
  expect_data_error(d.file("zero"), "IDX dimension 1 is zero");
}

// A file with more data than its header says (two files concatenated, a wrong
// count written by a converter) is refused, not silently cut.
TEST(ReadIdx, MoreItemsThanTheHeaderCounts) {
  TempDir d;
  write_raw(d.file("long"), idx_bytes({4}, iota_bytes(6)));
  expect_data_error(d.file("long"), "IDX");
}

// read_idx(path, rows) inflates only the first rows; they are the same bytes
// as the whole file's first rows, and the header's dimensions are the file's.
TEST(ReadIdxRows, FirstRowsEqualTheWholeReadsFirstRows) {
  TempDir d;
  const Bytes data = iota_bytes(5 * 3 * 4, 2);
  write_raw(d.file("raw"), idx_bytes({5, 3, 4}, data));
  write_gz(d.file("images.gz"), idx_bytes({5, 3, 4}, data));
  for (const std::string& path : {d.file("raw"), d.file("images.gz")}) {
    for (int64_t rows : {1, 2, 4}) {
      IdxArray a = read_idx(path, rows);
      EXPECT_EQ(a.dims, (std::vector<int64_t>{5, 3, 4})) << path;
      EXPECT_EQ(a.data, Bytes(data.begin(), data.begin() + rows * 12)) << path << " rows " << rows;
    }
    for (int64_t all : {0, -1, 5, 6}) EXPECT_EQ(read_idx(path, all).data, data) << path << " rows " << all;
  }
}

// The real data set, where it is installed: a 10000-image cut of the
// compressed 60000-image file is the full read's first 10000 images.
TEST(ReadIdxRows, FashionMnistCutEqualsTheFullReadsPrefix) {
  const std::string path = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
  if (!std::ifstream(path).good()) GTEST_SKIP() << path << " is not installed";
  const IdxArray full = read_idx(path);
  const IdxArray cut = read_idx(path, 10000);
  ASSERT_EQ(full.dims, (std::vector<int64_t>{60000, 28, 28}));
  EXPECT_EQ(cut.dims, full.dims);
  ASSERT_EQ(cut.data.size(), size_t{10000} * 28 * 28);
  EXPECT_TRUE(std::equal(cut.data.begin(), cut.data.end(), full.data.begin()));
}

// A file shorter or longer than its header says gives the same DataError
// when only its first rows are wanted as when all are: its length is checked
// (a raw file's size, a gzip file's length trailer) before the rows are read.
TEST(ReadIdxRows, WrongLengthIsRefusedAsInAWholeRead) {
  TempDir d;
  Bytes short_file = idx_bytes({4, 3, 3}, iota_bytes(4 * 9));
  short_file.resize(short_file.size() - 5);
  write_raw(d.file("short"), short_file);
  write_gz(d.file("short.gz"), short_file);
  for (const std::string& path : {d.file("short"), d.file("short.gz")}) {
    try {
      IdxArray a = read_idx(path, 1);
      FAIL() << path << " was read (" << a.data.size() << " bytes)";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(path + ": truncated IDX file (data: expected 36 bytes, got 31)"),
                std::string::npos)
          << e.what();
    }
  }
  write_raw(d.file("long"), idx_bytes({4}, iota_bytes(6)));
  write_gz(d.file("long.gz"), idx_bytes({4}, iota_bytes(6)));
  for (const std::string& path : {d.file("long"), d.file("long.gz")}) {
    try {
      IdxArray a = read_idx(path, 2);
      FAIL() << path << " was read (" << a.data.size() << " bytes)";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(path + ": IDX file has more data than its header counts (4 items)"),
                std::string::npos)
          << e.what();
    }
  }
}

// A cut download: the compressed bytes end early, so the trailer is missing.
TEST(ReadIdxRows, CutGzipFileIsRefused) {
  TempDir d;
  Bytes data(20000 * 4);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>((i * 2654435761u) >> 13);
  write_gz(d.file("whole.gz"), idx_bytes({20000, 2, 2}, data));
  std::ifstream in(d.file("whole.gz"), std::ios::binary);
  Bytes gz((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(gz.size(), 1000u);
  gz.resize(gz.size() * 2 / 3);
  write_raw(d.file("cut.gz"), gz);
  try {
    IdxArray a = read_idx(d.file("cut.gz"), 2);
    FAIL() << "the cut file was read (" << a.data.size() << " bytes)";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find(d.file("cut.gz") + ": truncated IDX file (data: expected 80000 bytes"),
              std::string::npos)
        << e.what();
  }
}

// load_data over a folder with the four MNIST file names (train .gz, test raw:
// .gz is preferred, raw accepted).
class LoadIdx : public ::testing::Test {
 protected:
  static constexpr uint32_t kPix = 28 * 28;
  TempDir dir_{"bs_idx"};
  DataSpec spec_;

  void SetUp() override {
    spec_.name = "mnist";
    spec_.root = dir_.path().string();
  }
  void write_split(const std::string& prefix, uint32_t images, const Bytes& labels, bool gz) {
    auto write = gz ? write_gz : write_raw;
    const std::string ext = gz ? ".gz" : "";
    write(dir_.file(prefix + "-images-idx3-ubyte" + ext), idx_bytes({images, 28, 28}, iota_bytes(images * kPix)));
    write(dir_.file(prefix + "-labels-idx1-ubyte" + ext), idx_bytes({static_cast<uint32_t>(labels.size())}, labels));
  }
};

TEST_F(LoadIdx, ReadsBothSplits) {
  write_split("train", 3, {2, 0, 9}, true);
  write_split("t10k", 2, {5, 1}, false);
  DataSplits s = load_data("study.yaml", spec_, 1);
  EXPECT_EQ(s.train.size, 3);
  EXPECT_EQ(s.test.size, 2);
  EXPECT_EQ(s.train.labels, (std::vector<int64_t>{2, 0, 9}));
  EXPECT_EQ(s.test.labels, (std::vector<int64_t>{5, 1}));
  EXPECT_EQ(s.train.images, iota_bytes(3 * kPix));
  EXPECT_EQ(s.test.images.size(), 2 * kPix);
  EXPECT_EQ(s.train.sample_shape, (std::vector<int64_t>{1, 28, 28}));
  EXPECT_EQ(s.train.sample_numel(), int64_t{kPix});
  EXPECT_EQ(s.train.input_type, InputType::U8);
  EXPECT_EQ(s.train.target_type, TargetType::Class);
  EXPECT_EQ(s.train.bytes(), 3 * (int64_t{kPix} + 8)) << "bytes of x and int64 labels";
  EXPECT_FLOAT_EQ(s.train.mean, 0.1307f) << "MNIST's usual normalization";
  EXPECT_FLOAT_EQ(s.test.stdev, 0.3081f);
}

TEST_F(LoadIdx, TrainSizeKeepsTheFirstSamples) {
  write_split("train", 3, {2, 0, 9}, true);
  write_split("t10k", 2, {5, 1}, false);
  spec_.train_size = 2;
  spec_.test_size = 10;  // more than there are: all of them
  DataSplits s = load_data("study.yaml", spec_, 1);
  EXPECT_EQ(s.train.size, 2);
  EXPECT_EQ(s.train.labels, (std::vector<int64_t>{2, 0}));
  EXPECT_EQ(s.train.images, iota_bytes(2 * kPix));
  EXPECT_EQ(s.test.size, 2);
}

TEST_F(LoadIdx, ImageAndLabelCountsMustAgree) {
  write_split("train", 3, {2, 0, 9, 4}, true);
  write_split("t10k", 2, {5, 1}, false);
  try {
    load_data("study.yaml", spec_, 1);
    FAIL() << "3 images with 4 labels were accepted";
  } catch (const DataError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(dir_.file("train-images-idx3-ubyte.gz") + " has 3 images but " +
                     dir_.file("train-labels-idx1-ubyte.gz") + " has 4 labels"),
              std::string::npos)
        << m;
  }
}

TEST_F(LoadIdx, LabelOutsideTheClasses) {
  write_split("train", 2, {2, 10}, true);
  write_split("t10k", 2, {5, 1}, false);
  try {
    load_data("study.yaml", spec_, 1);
    FAIL() << "label 10 was accepted";
  } catch (const DataError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(dir_.file("train-labels-idx1-ubyte.gz") + ": label 10 outside 0..9"), std::string::npos) << m;
  }
}

TEST_F(LoadIdx, ImagesMustBe28By28) {
  write_gz(dir_.file("train-images-idx3-ubyte.gz"), idx_bytes({2, 14, 14}, iota_bytes(2 * 14 * 14)));
  write_gz(dir_.file("train-labels-idx1-ubyte.gz"), idx_bytes({2}, {1, 2}));
  write_split("t10k", 2, {5, 1}, false);
  try {
    load_data("study.yaml", spec_, 1);
    FAIL() << "14x14 images were accepted";
  } catch (const DataError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(dir_.file("train-images-idx3-ubyte.gz") + ": expected 28x28 images, got 14x14"), std::string::npos)
        << m;
  }
}

TEST_F(LoadIdx, MalformedFileIsNamed) {
  write_split("train", 3, {2, 0, 9}, true);
  write_raw(dir_.file("t10k-images-idx3-ubyte"), idx_bytes({2, 28, 28}, iota_bytes(kPix)));  // one image short
  write_raw(dir_.file("t10k-labels-idx1-ubyte"), idx_bytes({2}, {5, 1}));
  try {
    load_data("study.yaml", spec_, 1);
    FAIL() << "a truncated test image file was accepted";
  } catch (const DataError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(dir_.file("t10k-images-idx3-ubyte") + ": truncated IDX file"), std::string::npos) << m;
  }
}

// The test split cut to one image is still checked whole: a file one image
// short is refused, naming it, though the image it lacks is not wanted.
TEST_F(LoadIdx, CutSplitStillRefusesAShortFile) {
  write_split("train", 3, {2, 0, 9}, true);
  write_gz(dir_.file("t10k-images-idx3-ubyte.gz"), idx_bytes({2, 28, 28}, iota_bytes(kPix)));  // one image short
  write_raw(dir_.file("t10k-labels-idx1-ubyte"), idx_bytes({2}, {5, 1}));
  spec_.train_size = 2;
  spec_.test_size = 1;
  try {
    load_data("study.yaml", spec_, 1);
    FAIL() << "a truncated test image file was accepted";
  } catch (const DataError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(dir_.file("t10k-images-idx3-ubyte.gz") + ": truncated IDX file"), std::string::npos) << m;
  }
}

TEST_F(LoadIdx, MissingFileNamesTheKeyAndTheFile) {
  write_split("train", 3, {2, 0, 9}, true);
  write_raw(dir_.file("t10k-images-idx3-ubyte"), idx_bytes({2, 28, 28}, iota_bytes(2 * kPix)));
  try {
    load_data("study.yaml", spec_, 1);
    FAIL() << "a missing label file was accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file(), "study.yaml");
    EXPECT_EQ(e.key(), "data.root");
    EXPECT_NE(std::string(e.what()).find("t10k-labels-idx1-ubyte[.gz]"), std::string::npos) << e.what();
  }
}

TEST(LoadSynthetic, SamplesAreOneChannel28x28Bytes) {
  DataSpec spec;
  spec.name = "synthetic";
  spec.synthetic_train = 20;
  spec.synthetic_test = 5;
  DataSplits s = load_data("study.yaml", spec, 3);
  for (const Dataset* d : {&s.train, &s.test}) {
    EXPECT_EQ(d->sample_shape, (std::vector<int64_t>{1, 28, 28}));
    EXPECT_EQ(d->input_type, InputType::U8);
    EXPECT_EQ(d->images.size(), static_cast<size_t>(d->size * d->sample_numel()));
    EXPECT_EQ(d->labels.size(), static_cast<size_t>(d->size));
    EXPECT_EQ(d->num_classes, 10);
  }
  EXPECT_EQ(s.train.size, 20);
  EXPECT_EQ(s.test.size, 5);
}

}  // namespace
}  // namespace bs
