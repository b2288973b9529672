// data/hdf5_data (data.name: hdf5) and the reading half of hdf5/h5: small
// files written here with the HDF5 C API and loaded back. Every input the
// loader refuses is a case that checks the error's type (its exit code) and
// that its message names the file and the config key.
#include <cmath>
#include <cstdint>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <hdf5.h>

#include "data/dataset.h"
#include "data/hdf5_data.h"
#include "hdf5/h5.h"
#include "helpers.h"
#include "util/errors.h"

namespace bs {
namespace {

using test::TempDir;

template <typename T>
hid_t mem_type();
template <>
hid_t mem_type<uint8_t>() {
  return H5T_NATIVE_UINT8;
}
template <>
hid_t mem_type<int16_t>() {
  return H5T_NATIVE_INT16;
}
template <>
hid_t mem_type<int32_t>() {
  return H5T_NATIVE_INT32;
}
template <>
hid_t mem_type<int64_t>() {
  return H5T_NATIVE_INT64;
}
template <>
hid_t mem_type<float>() {
  return H5T_NATIVE_FLOAT;
}
template <>
hid_t mem_type<double>() {
  return H5T_NATIVE_DOUBLE;
}

// An HDF5 file being written by a test; closed when it goes out of scope.
class Writer {
 public:
  explicit Writer(const std::string& path) : file_(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)) {
    EXPECT_GE(file_, 0) << path;
  }
  ~Writer() { H5Fclose(file_); }
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Dataset `path` (its groups created on the way) of `file_type` and `dims`,
  // from `values` (converted by HDF5).
  template <typename T>
  void put(const std::string& path, const std::vector<hsize_t>& dims, const std::vector<T>& values,
           hid_t file_type = mem_type<T>()) {
    put_raw(path, dims, file_type, mem_type<T>(), values.data());
  }

  void put_raw(const std::string& path, const std::vector<hsize_t>& dims, hid_t file_type, hid_t memory_type,
               const void* data) {
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t space =
        dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
    hid_t d = H5Dcreate2(file_, path.c_str(), file_type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(d, 0) << path;
    EXPECT_GE(H5Dwrite(d, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), 0) << path;
    H5Dclose(d);
    H5Sclose(space);
    H5Pclose(lcpl);
  }

  hid_t id() const { return file_; }

 private:
  hid_t file_;
};

std::vector<uint8_t> bytes_from(uint8_t start, size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(start + 13 * i);
  return v;
}

// The four datasets of a small image set: 6 and 3 samples of 1 x 2 x 2 bytes.
void put_images(Writer& w) {
  w.put<uint8_t>("/train/x", {6, 1, 2, 2}, bytes_from(0, 24));
  w.put<int64_t>("/train/y", {6}, {0, 1, 2, 3, 1, 0});
  w.put<uint8_t>("/test/x", {3, 1, 2, 2}, bytes_from(100, 12));
  w.put<int64_t>("/test/y", {3}, {4, 0, 1});
}

class Hdf5Data : public ::testing::Test {
 protected:
  Hdf5Data() {
    spec_.name = "hdf5";
    spec_.path = path_;
  }
  // Writes the file with `fill`, then loads it.
  DataSplits load(const std::function<void(Writer&)>& fill) {
    write(fill);
    return load_data("study.yaml", spec_, 1);
  }
  void write(const std::function<void(Writer&)>& fill) {
    Writer w(path_);
    fill(w);
  }
  // load_data throws E whose message names the file and holds every one of `words`.
  template <typename E>
  std::string expect_error(const std::vector<std::string>& words) {
    try {
      load_data("study.yaml", spec_, 1);
      ADD_FAILURE() << "loaded; expected an error saying: " << words.front();
      return "";
    } catch (const E& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(path_), std::string::npos) << "the message names the file: " << m;
      for (const auto& word : words) EXPECT_NE(m.find(word), std::string::npos) << "missing '" << word << "' in: " << m;
      return m;
    }
  }

  TempDir dir_;
  std::string path_ = dir_.file("data.h5");
  DataSpec spec_;
};

// ---------------------------------------------------------------- good input

TEST_F(Hdf5Data, Uint8ImagesKeptAsBytesAndStandardizedOverTheTrainingSplit) {
  DataSplits s = load(put_images);
  EXPECT_EQ(s.train.size, 6);
  EXPECT_EQ(s.test.size, 3);
  for (const Dataset* d : {&s.train, &s.test}) {
    EXPECT_EQ(d->sample_shape, (std::vector<int64_t>{1, 2, 2}));
    EXPECT_EQ(d->sample_numel(), 4);
    EXPECT_EQ(d->input_type, InputType::U8);
    EXPECT_TRUE(d->features.empty());
    EXPECT_EQ(d->target_type, TargetType::Class);
    EXPECT_EQ(d->target_numel(), 1);
    EXPECT_EQ(d->num_classes, 5) << "1 + the largest label of either split (4, in test)";
  }
  EXPECT_EQ(s.train.images, bytes_from(0, 24));
  EXPECT_EQ(s.test.images, bytes_from(100, 12));
  EXPECT_EQ(s.train.labels, (std::vector<int64_t>{0, 1, 2, 3, 1, 0}));
  EXPECT_EQ(s.test.labels, (std::vector<int64_t>{4, 0, 1}));
  EXPECT_EQ(s.train.bytes(), 6 * (4 + 8));
  // Mean and population stdev of the training bytes / 255, not the test ones.
  double sum = 0, sq = 0;
  for (uint8_t v : bytes_from(0, 24)) sum += v / 255.0;
  const double mean = sum / 24;
  for (uint8_t v : bytes_from(0, 24)) sq += (v / 255.0 - mean) * (v / 255.0 - mean);
  EXPECT_FLOAT_EQ(s.train.mean, static_cast<float>(mean));
  EXPECT_FLOAT_EQ(s.train.stdev, static_cast<float>(std::sqrt(sq / 24)));
  EXPECT_EQ(s.test.mean, s.train.mean);
  EXPECT_EQ(s.test.stdev, s.train.stdev);
}

TEST_F(Hdf5Data, GivenMeanAndStdevAreUsed) {
  spec_.mean = 0.25;
  spec_.stdev = 0.5;
  DataSplits s = load(put_images);
  EXPECT_FLOAT_EQ(s.train.mean, 0.25f);
  EXPECT_FLOAT_EQ(s.test.stdev, 0.5f);
}

TEST_F(Hdf5Data, StandardizationOverTheCutTrainingSplit) {
  spec_.train_size = 2;
  DataSplits s = load(put_images);
  double sum = 0;
  for (uint8_t v : bytes_from(0, 8)) sum += v / 255.0;
  EXPECT_FLOAT_EQ(s.train.mean, static_cast<float>(sum / 8));
}

TEST_F(Hdf5Data, Float64FeaturesAreConvertedToFloat32) {
  const std::vector<double> train = {0.5, -1.25, 3.0, 1e-3, 2.5, -7.0, 0.0, 1.0};
  DataSplits s = load([&](Writer& w) {
    w.put<double>("/train/x", {4, 2}, train);
    w.put<int64_t>("/train/y", {4}, {1, 0, 1, 1}, H5T_STD_I32BE);  // any integer type, either byte order
    w.put<double>("/test/x", {1, 2}, {9.0, -9.0});
    w.put<int64_t>("/test/y", {1}, {0}, H5T_STD_U8LE);
  });
  EXPECT_EQ(s.train.input_type, InputType::F32);
  EXPECT_TRUE(s.train.images.empty());
  EXPECT_EQ(s.train.sample_shape, (std::vector<int64_t>{2}));
  std::vector<float> expected(train.begin(), train.end());
  EXPECT_EQ(s.train.features, expected);
  EXPECT_EQ(s.test.features, (std::vector<float>{9.f, -9.f}));
  EXPECT_EQ(s.train.labels, (std::vector<int64_t>{1, 0, 1, 1}));
  EXPECT_EQ(s.train.num_classes, 2);
  EXPECT_EQ(s.train.mean, 0.f);
  EXPECT_EQ(s.train.stdev, 1.f);
  EXPECT_EQ(s.train.bytes(), 4 * (2 * 4 + 8));
}

TEST_F(Hdf5Data, IntegerFeaturesAreConvertedToFloat32AndOneDimensionalXIsAScalarSample) {
  DataSplits s = load([](Writer& w) {
    w.put<int16_t>("/train/x", {3}, {-300, 0, 1200});
    w.put<int64_t>("/train/y", {3}, {0, 1, 0});
    w.put<int16_t>("/test/x", {1}, {7}, H5T_STD_U16LE);
    w.put<int64_t>("/test/y", {1}, {1});
  });
  EXPECT_EQ(s.train.input_type, InputType::F32);
  EXPECT_TRUE(s.train.sample_shape.empty());
  EXPECT_EQ(s.train.sample_numel(), 1);
  EXPECT_EQ(s.train.features, (std::vector<float>{-300.f, 0.f, 1200.f}));
  EXPECT_EQ(s.test.features, (std::vector<float>{7.f}));
}

TEST_F(Hdf5Data, FloatTargetsPerSampleVector) {
  DataSplits s = load([](Writer& w) {
    w.put<float>("/train/x", {3, 2}, {1, 2, 3, 4, 5, 6});
    w.put<double>("/train/y", {3, 2}, {0.5, 1.5, -2, 0, 1e-2, 7});
    w.put<float>("/test/x", {2, 2}, {1, 1, 2, 2});
    w.put<float>("/test/y", {2, 2}, {0.25f, 0.75f, 1, 2});
  });
  for (const Dataset* d : {&s.train, &s.test}) {
    EXPECT_EQ(d->target_type, TargetType::Float);
    EXPECT_EQ(d->target_shape, (std::vector<int64_t>{2}));
    EXPECT_EQ(d->target_numel(), 2);
    EXPECT_TRUE(d->labels.empty());
    EXPECT_EQ(d->num_classes, 0) << "no classes: float targets";
  }
  EXPECT_EQ(s.train.targets, (std::vector<float>{0.5f, 1.5f, -2.f, 0.f, 1e-2f, 7.f}));
  EXPECT_EQ(s.test.targets, (std::vector<float>{0.25f, 0.75f, 1.f, 2.f}));
  EXPECT_EQ(s.train.bytes(), 3 * (2 * 4 + 2 * 4));
}

TEST_F(Hdf5Data, FloatTargetPerSampleScalar) {
  DataSplits s = load([](Writer& w) {
    w.put<float>("/train/x", {2, 1}, {1, 2});
    w.put<double>("/train/y", {2}, {0.5, -0.5});
    w.put<float>("/test/x", {1, 1}, {3});
    w.put<double>("/test/y", {1}, {1.5});
  });
  EXPECT_EQ(s.train.target_type, TargetType::Float);
  EXPECT_TRUE(s.train.target_shape.empty());
  EXPECT_EQ(s.train.target_numel(), 1);
  EXPECT_EQ(s.train.targets, (std::vector<float>{0.5f, -0.5f}));
}

TEST_F(Hdf5Data, DatasetPathsAreKeys) {
  spec_.train_x = "/a/images";
  spec_.train_y = "a/labels";  // relative to the root group
  spec_.test_x = "/b/images";
  spec_.test_y = "/b/labels";
  DataSplits s = load([](Writer& w) {
    w.put<uint8_t>("/a/images", {2, 3}, {1, 2, 3, 4, 5, 6});
    w.put<int64_t>("/a/labels", {2}, {1, 0});
    w.put<uint8_t>("/b/images", {1, 3}, {7, 8, 9});
    w.put<int64_t>("/b/labels", {1}, {2});
  });
  EXPECT_EQ(s.train.images, (std::vector<uint8_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(s.test.labels, (std::vector<int64_t>{2}));
  EXPECT_EQ(s.train.num_classes, 3);
}

// Rows past train_size / test_size are never read: here they hold values the
// loader refuses (NaN, a negative label), and loading succeeds.
TEST_F(Hdf5Data, TrainSizeAndTestSizeReadOnlyTheFirstRows) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  spec_.train_size = 2;
  spec_.test_size = 1;
  DataSplits s = load([&](Writer& w) {
    w.put<double>("/train/x", {4, 2}, {1, 2, 3, 4, nan, 6, 7, 8});
    w.put<int64_t>("/train/y", {4}, {0, 1, -1, 2});
    w.put<double>("/test/x", {3, 2}, {9, 10, nan, nan, 1, 1});
    w.put<int64_t>("/test/y", {3}, {1, -5, 0});
  });
  EXPECT_EQ(s.train.size, 2);
  EXPECT_EQ(s.train.features, (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(s.train.labels, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(s.test.size, 1);
  EXPECT_EQ(s.test.features, (std::vector<float>{9, 10}));
  EXPECT_EQ(s.train.num_classes, 2);
}

TEST_F(Hdf5Data, DataFilesChecksTheHeadersAndNamesTheFile) {
  write(put_images);
  EXPECT_EQ(data_files("study.yaml", spec_), (std::vector<std::string>{path_}));
  spec_.test_y = "/test/labels";
  EXPECT_THROW(data_files("study.yaml", spec_), DataError);
}

// ---------------------------------------------------------------- bad input

TEST_F(Hdf5Data, MissingDatasetNamesTheKeyAndListsTheFilesDatasets) {
  write(put_images);
  spec_.train_y = "/train/labels";
  ::testing::internal::CaptureStderr();
  expect_error<DataError>({"'/train/labels'", "data.train_y", "/test/x (uint8 [3, 1, 2, 2])", "/test/y (int64 [3])",
                           "/train/x (uint8 [6, 1, 2, 2])", "/train/y (int64 [6])"});
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "") << "no HDF5 error stack on stderr";
}

TEST_F(Hdf5Data, MissingGroupAndPathThroughADatasetAreMissingDatasets) {
  write(put_images);
  spec_.test_x = "/valid/x";
  expect_error<DataError>({"'/valid/x'", "data.test_x", "/train/x"});
  spec_.test_x = "/test/x/more";
  expect_error<DataError>({"'/test/x/more'", "data.test_x"});
  spec_.test_x = "/test";  // a group
  expect_error<DataError>({"'/test'", "data.test_x"});
}

TEST_F(Hdf5Data, MissingPathIsAConfigError) {
  try {
    load_data("study.yaml", spec_, 1);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file(), "study.yaml");
    EXPECT_EQ(e.key(), "data.path");
    EXPECT_NE(std::string(e.what()).find(path_), std::string::npos) << e.what();
  }
}

TEST_F(Hdf5Data, PathThatIsAFolderIsAConfigError) {
  spec_.path = dir_.path().string();
  try {
    load_data("study.yaml", spec_, 1);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "data.path");
    EXPECT_NE(std::string(e.what()).find("not a file"), std::string::npos) << e.what();
  }
}

TEST_F(Hdf5Data, FileThatIsNotHdf5) {
  std::ofstream(path_) << "x,y\n1,2\n";
  ::testing::internal::CaptureStderr();
  expect_error<DataError>({"data.path", "not an HDF5 file"});
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}

struct BadType {
  const char* name;
  const char* found;                   // in the message
  std::function<void(Writer&)> put_x;  // writes /train/x, 2 rows
};

hid_t float16_type() {
  hid_t t = H5Tcopy(H5T_IEEE_F32LE);
  H5Tset_fields(t, 15, 10, 5, 0, 10);
  H5Tset_size(t, 2);
  H5Tset_precision(t, 16);
  H5Tset_ebias(t, 15);
  return t;
}

std::vector<BadType> bad_x_types() {
  return {
      {"float16", "float16",
       [](Writer& w) {
         hid_t t = float16_type();
         w.put<float>("/train/x", {2, 1}, {1.f, 2.f}, t);
         H5Tclose(t);
       }},
      {"string", "string",
       [](Writer& w) {
         hid_t t = H5Tcopy(H5T_C_S1);
         H5Tset_size(t, 3);
         const char text[] = "abcdef";
         w.put_raw("/train/x", {2}, t, t, text);
         H5Tclose(t);
       }},
      {"compound", "compound",
       [](Writer& w) {
         struct Rec {
           int32_t a;
           float b;
         };
         hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(Rec));
         H5Tinsert(t, "a", HOFFSET(Rec, a), H5T_NATIVE_INT32);
         H5Tinsert(t, "b", HOFFSET(Rec, b), H5T_NATIVE_FLOAT);
         const Rec r[2] = {{1, 2.f}, {3, 4.f}};
         w.put_raw("/train/x", {2}, t, t, r);
         H5Tclose(t);
       }},
      {"bool", "enum",
       [](Writer& w) {  // as h5py writes numpy bool
         hid_t t = H5Tenum_create(H5T_NATIVE_INT8);
         int8_t f = 0, tr = 1;
         H5Tenum_insert(t, "FALSE", &f);
         H5Tenum_insert(t, "TRUE", &tr);
         const int8_t v[2] = {0, 1};
         w.put_raw("/train/x", {2, 1}, t, t, v);
         H5Tclose(t);
       }},
  };
}

class Hdf5BadXType : public Hdf5Data, public ::testing::WithParamInterface<BadType> {};

TEST_P(Hdf5BadXType, NamesTheFileDatasetKeyTypeAndTheSupportedOnes) {
  write([](Writer& w) {
    GetParam().put_x(w);
    w.put<int64_t>("/train/y", {2}, {0, 1});
    w.put<float>("/test/x", {1, 1}, {1});
    w.put<int64_t>("/test/y", {1}, {0});
  });
  expect_error<DataError>({"data.train_x", "'/train/x'", GetParam().found, "supported", "uint8", "float64"});
}

INSTANTIATE_TEST_SUITE_P(Types, Hdf5BadXType, ::testing::ValuesIn(bad_x_types()),
                         [](const ::testing::TestParamInfo<BadType>& info) { return std::string(info.param.name); });

TEST_F(Hdf5Data, StringLabelsAreRefused) {
  write([](Writer& w) {
    w.put<uint8_t>("/train/x", {2, 1}, {1, 2});
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, 3);
    w.put_raw("/train/y", {2}, t, t, "catdog");
    H5Tclose(t);
    w.put<uint8_t>("/test/x", {1, 1}, {1});
    w.put<int64_t>("/test/y", {1}, {0});
  });
  expect_error<DataError>({"data.train_y", "'/train/y'", "string", "supported", "integer", "float32"});
}

TEST_F(Hdf5Data, IntegerLabelsMustBeOneDimensional) {
  write([](Writer& w) {
    w.put<uint8_t>("/train/x", {2, 1}, {1, 2});
    w.put<int64_t>("/train/y", {2, 2}, {0, 1, 1, 0});
    w.put<uint8_t>("/test/x", {1, 1}, {1});
    w.put<int64_t>("/test/y", {1}, {0});
  });
  expect_error<DataError>({"data.train_y", "'/train/y'", "int64 [2, 2]", "1-d"});
}

TEST_F(Hdf5Data, FloatTargetsOfThreeDimensionsAreRefused) {
  write([](Writer& w) {
    w.put<float>("/train/x", {2, 1}, {1, 2});
    w.put<float>("/train/y", {2, 1, 1}, {0, 1});
    w.put<float>("/test/x", {1, 1}, {1});
    w.put<float>("/test/y", {1, 1, 1}, {0});
  });
  expect_error<DataError>({"data.train_y", "[N] or [N, k]"});
}

TEST_F(Hdf5Data, NegativeLabelNamesItsRow) {
  write([](Writer& w) {
    w.put<uint8_t>("/train/x", {4, 1}, {1, 2, 3, 4});
    w.put<int64_t>("/train/y", {4}, {0, 1, 2, 3});
    w.put<uint8_t>("/test/x", {3, 1}, {1, 2, 3});
    w.put<int32_t>("/test/y", {3}, {0, 1, -2});
  });
  expect_error<DataError>({"data.test_y", "'/test/y'", "row 2", "label -2", "must be in 0 .."});
}

TEST_F(Hdf5Data, HugeLabelIsNotAClass) {
  write([](Writer& w) {
    w.put<uint8_t>("/train/x", {2, 1}, {1, 2});
    w.put<int64_t>("/train/y", {2}, {0, int64_t{1} << 40});
    w.put<uint8_t>("/test/x", {1, 1}, {1});
    w.put<int64_t>("/test/y", {1}, {0});
  });
  expect_error<DataError>({"data.train_y", "row 1", "model.loss: mse"});
}

TEST_F(Hdf5Data, RowsOfXAndYMustAgree) {
  write([](Writer& w) {
    w.put<uint8_t>("/train/x", {4, 1}, {1, 2, 3, 4});
    w.put<int64_t>("/train/y", {3}, {0, 1, 2});
    w.put<uint8_t>("/test/x", {1, 1}, {1});
    w.put<int64_t>("/test/y", {1}, {0});
  });
  expect_error<DataError>({"data.train_x ('/train/x') has 4 rows but data.train_y ('/train/y') has 3"});
}

TEST_F(Hdf5Data, SplitsMustAgreeOnSampleShape) {
  write([](Writer& w) {
    w.put<uint8_t>("/train/x", {2, 2}, {1, 2, 3, 4});
    w.put<int64_t>("/train/y", {2}, {0, 1});
    w.put<uint8_t>("/test/x", {1, 3}, {1, 2, 3});
    w.put<int64_t>("/test/y", {1}, {0});
  });
  expect_error<DataError>({"data.train_x", "data.test_x", "differ in shape", "[2] and [3]"});
}

TEST_F(Hdf5Data, SplitsMustAgreeOnInputType) {
  write([](Writer& w) {
    w.put<uint8_t>("/train/x", {2, 1}, {1, 2});
    w.put<int64_t>("/train/y", {2}, {0, 1});
    w.put<float>("/test/x", {1, 1}, {1});
    w.put<int64_t>("/test/y", {1}, {0});
  });
  expect_error<DataError>({"data.train_x", "data.test_x", "uint8", "float32"});
}

TEST_F(Hdf5Data, SplitsMustAgreeOnTargetKind) {
  write([](Writer& w) {
    w.put<float>("/train/x", {2, 1}, {1, 2});
    w.put<int64_t>("/train/y", {2}, {0, 1});
    w.put<float>("/test/x", {1, 1}, {1});
    w.put<float>("/test/y", {1}, {0});
  });
  expect_error<DataError>({"data.train_y", "data.test_y", "class labels", "float targets"});
}

TEST_F(Hdf5Data, SplitsMustAgreeOnTargetShape) {
  write([](Writer& w) {
    w.put<float>("/train/x", {2, 1}, {1, 2});
    w.put<float>("/train/y", {2, 2}, {0, 1, 2, 3});
    w.put<float>("/test/x", {1, 1}, {1});
    w.put<float>("/test/y", {1, 3}, {0, 1, 2});
  });
  expect_error<DataError>({"data.train_y", "data.test_y", "[2] and [3]"});
}

TEST_F(Hdf5Data, NanInFeaturesNamesTheFirstBadRow) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  write([&](Writer& w) {
    w.put<double>("/train/x", {4, 2}, {1, 2, 3, 4, 5, nan, nan, 8});
    w.put<int64_t>("/train/y", {4}, {0, 1, 0, 1});
    w.put<double>("/test/x", {1, 2}, {1, 2});
    w.put<int64_t>("/test/y", {1}, {0});
  });
  expect_error<DataError>({"data.train_x", "'/train/x'", "row 2 holds NaN or Inf"});
}

TEST_F(Hdf5Data, InfInTargetsNamesTheFirstBadRow) {
  const float inf = std::numeric_limits<float>::infinity();
  write([&](Writer& w) {
    w.put<float>("/train/x", {2, 1}, {1, 2});
    w.put<float>("/train/y", {2}, {0, 1});
    w.put<float>("/test/x", {3, 1}, {1, 2, 3});
    w.put<float>("/test/y", {3}, {0, -inf, 2});
  });
  expect_error<DataError>({"data.test_y", "'/test/y'", "row 1 holds NaN or Inf"});
}

TEST_F(Hdf5Data, ScalarDatasetIsRefused) {
  write([](Writer& w) {
    w.put<uint8_t>("/train/x", {}, {1});
    w.put<int64_t>("/train/y", {1}, {0});
    w.put<uint8_t>("/test/x", {1}, {1});
    w.put<int64_t>("/test/y", {1}, {0});
  });
  expect_error<DataError>({"data.train_x", "is a scalar"});
}

TEST_F(Hdf5Data, TrainSizeLargerThanTheFile) {
  write(put_images);
  spec_.train_size = 7;
  expect_error<DataError>({"data.train_size is 7", "data.train_x", "has only 6 rows"});
}

TEST_F(Hdf5Data, MeanWithFloatFeaturesIsAConfigError) {
  write([](Writer& w) {
    w.put<float>("/train/x", {2, 1}, {1, 2});
    w.put<int64_t>("/train/y", {2}, {0, 1});
    w.put<float>("/test/x", {1, 1}, {1});
    w.put<int64_t>("/test/y", {1}, {0});
  });
  spec_.mean = 0.5;
  try {
    load_data("study.yaml", spec_, 1);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "data.mean");
    EXPECT_NE(std::string(e.what()).find("only to uint8 x"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path_), std::string::npos) << e.what();
  }
}

TEST_F(Hdf5Data, ConstantImagesNeedAGivenStdev) {
  write([](Writer& w) {
    w.put<uint8_t>("/train/x", {2, 2}, {7, 7, 7, 7});
    w.put<int64_t>("/train/y", {2}, {0, 1});
    w.put<uint8_t>("/test/x", {1, 2}, {1, 2});
    w.put<int64_t>("/test/y", {1}, {0});
  });
  expect_error<DataError>({"data.train_x", "standard deviation is 0", "data.stdev"});
  spec_.stdev = 0.3;
  EXPECT_FLOAT_EQ(load_data("study.yaml", spec_, 1).train.mean, 7.f / 255.f);
}

// ---------------------------------------------------------------- memory

TEST(Hdf5Memory, MoreThanAvailableNamesBothSizesAndTrainSize) {
  try {
    check_fits_memory("big.h5", 2'500'000'000, 1'000'000'000);
    FAIL();
  } catch (const DataError& e) {
    const std::string m = e.what();
    for (const char* w : {"big.h5", "2500.0 MB", "1000.0 MB", "data.train_size"})
      EXPECT_NE(m.find(w), std::string::npos) << "missing '" << w << "' in: " << m;
  }
  EXPECT_NO_THROW(check_fits_memory("big.h5", 1'000'000'000, 1'000'000'000));
  EXPECT_NO_THROW(check_fits_memory("big.h5", 1'000'000'000, -1)) << "unknown: not checked";
}

TEST(Hdf5Memory, ThisHostReportsItsAvailableMemory) { EXPECT_GT(available_memory_bytes(), 0); }

// ---------------------------------------------------------------- loss

DataSplits splits(TargetType t) {
  DataSplits d;
  d.train.target_type = d.test.target_type = t;
  if (t == TargetType::Float) d.train.target_shape = {3};
  return d;
}

TEST(CheckLossFits, MatchingLossesPass) {
  EXPECT_NO_THROW(check_loss_fits("study.yaml", "cross_entropy", splits(TargetType::Class)));
  EXPECT_NO_THROW(check_loss_fits("study.yaml", "mse", splits(TargetType::Float)));
}

TEST(CheckLossFits, MseOnClassLabels) {
  try {
    check_loss_fits("study.yaml", "mse", splits(TargetType::Class));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file(), "study.yaml");
    EXPECT_EQ(e.key(), "model.loss");
    const std::string m = e.what();
    EXPECT_NE(m.find("data.train_y holds int64 class labels"), std::string::npos) << m;
    EXPECT_NE(m.find("use model.loss: cross_entropy"), std::string::npos) << m;
  }
}

TEST(CheckLossFits, CrossEntropyOnFloatTargets) {
  try {
    check_loss_fits("study.yaml", "cross_entropy", splits(TargetType::Float));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "model.loss");
    const std::string m = e.what();
    EXPECT_NE(m.find("data.train_y holds float targets ([3] per sample)"), std::string::npos) << m;
    EXPECT_NE(m.find("use model.loss: mse"), std::string::npos) << m;
  }
}

// ---------------------------------------------------------------- h5 reading

TEST(H5Read, DatasetsPathsAndTypes) {
  TempDir dir;
  const std::string path = dir.file("f.h5");
  {
    Writer w(path);
    w.put<int64_t>("/z", {2}, {1, 2}, H5T_STD_I64BE);
    w.put<uint8_t>("/a/b/c", {1, 2, 3}, {1, 2, 3, 4, 5, 6});
    w.put<double>("/a/d", {}, {1.0});
    H5Gclose(H5Gcreate2(w.id(), "/empty", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  }
  EXPECT_TRUE(h5::is_hdf5_file(path));
  EXPECT_FALSE(h5::is_hdf5_file(dir.file("absent.h5")));
  h5::Handle f = h5::open_file_readonly(path);
  EXPECT_EQ(h5::dataset_paths(f.id()), (std::vector<std::string>{"/a/b/c", "/a/d", "/z"}));
  EXPECT_TRUE(h5::has_dataset(f.id(), "/a/b/c"));
  EXPECT_TRUE(h5::has_dataset(f.id(), "a/b/c"));
  EXPECT_FALSE(h5::has_dataset(f.id(), "/a/b"));
  EXPECT_FALSE(h5::has_dataset(f.id(), "/a/x/c"));
  EXPECT_FALSE(h5::has_dataset(f.id(), "/z/c"));
  EXPECT_FALSE(h5::has_dataset(f.id(), "/"));
  h5::Handle c = h5::open_dataset(f.id(), "/a/b/c");
  EXPECT_EQ(h5::dims_of(c.id()), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(h5::describe(c.id()), "uint8 [1, 2, 3]");
  h5::Handle z = h5::open_dataset(f.id(), "/z");
  const h5::ElementType t = h5::element_type(z.id());
  EXPECT_EQ(t.cls, h5::ElementType::Integer);
  EXPECT_TRUE(t.is_signed);
  EXPECT_EQ(t.bytes, 8u);
  EXPECT_EQ(t.name, "int64");
  std::vector<float> first(1);
  h5::read_leading_rows(z.id(), h5::Native::F32, 1, first.data());
  EXPECT_EQ(first[0], 1.f);
  EXPECT_EQ(h5::describe(h5::open_dataset(f.id(), "/a/d").id()), "float64 []");
}

}  // namespace
}  // namespace bs
