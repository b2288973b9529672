// train/device_data: the data on the device and the loss. uint8 inputs are
// standardized, float inputs used as stored; mse's evaluation sums are the
// per-sample mean over the target's elements (what mean_loss averages); a
// data set larger than the device's free memory and a model output that
// does not fit the loss are DataErrors naming what would fit.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "train/device_data.h"
#include "util/errors.h"

namespace bs {
namespace {

Dataset floats(int64_t n, std::vector<int64_t> target_shape) {
  Dataset d;
  d.size = n;
  d.sample_shape = {3};
  d.input_type = InputType::F32;
  for (int64_t i = 0; i < n * 3; ++i) d.features.push_back(static_cast<float>(i) - 2.5f);
  d.target_type = TargetType::Float;
  d.target_shape = std::move(target_shape);
  for (int64_t i = 0; i < n * d.target_numel(); ++i) d.targets.push_back(0.5f * static_cast<float>(i));
  return d;
}

Dataset bytes(int64_t n) {
  Dataset d;
  d.size = n;
  d.sample_shape = {2};
  d.images = {0, 255, 51, 102};
  d.mean = 0.5f;
  d.stdev = 0.25f;
  d.labels = {1, 0};
  d.num_classes = 2;
  return d;
}

TEST(DeviceData, Uint8IsStandardizedFloatIsUsedAsStored) {
  DeviceSplit u = to_device(bytes(2), at::kCPU);
  at::Tensor x = u.inputs(0, 2);
  ASSERT_EQ(x.scalar_type(), at::kFloat);
  EXPECT_NEAR(x[0][0].item<float>(), (0.0f - 0.5f) / 0.25f, 1e-6);
  EXPECT_NEAR(x[0][1].item<float>(), (1.0f - 0.5f) / 0.25f, 1e-6);
  EXPECT_NEAR(x[1][0].item<float>(), (0.2f - 0.5f) / 0.25f, 1e-6);
  EXPECT_EQ(u.targets(0, 2).scalar_type(), at::kLong);
  DeviceSplit f = to_device(floats(4, {2}), at::kCPU);
  at::Tensor idx = at::tensor(std::vector<int64_t>{3, 1});
  EXPECT_TRUE(at::equal(f.inputs(idx)[0], at::tensor(std::vector<float>{6.5f, 7.5f, 8.5f})));
  EXPECT_EQ(f.targets(idx).sizes(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(f.targets(idx)[0][1].item<float>(), 3.5f);
}

TEST(DeviceData, MseSumsArePerSampleMeansOverTheTargetElements) {
  ModelSpec spec;
  spec.loss = "mse";
  Objective o(spec);
  EXPECT_FALSE(o.classifies());
  at::Tensor y = at::tensor(std::vector<float>{0, 0, 0, 1, 1, 1}).view({2, 3});
  at::Tensor out = at::tensor(std::vector<float>{1, 1, 1, 1, 1, 3}).view({2, 3});
  // squared errors: [1, 1, 1] and [0, 0, 4]: per-sample means 1 and 4/3
  EXPECT_NEAR(o.mean_loss(out, y).item<double>(), 7.0 / 6.0, 1e-6);
  at::Tensor acc = at::zeros({3}, at::kDouble);
  o.add_sums(out, y, acc);
  EXPECT_NEAR(acc[0].item<double>(), 1.0 + 4.0 / 3.0, 1e-6);
  EXPECT_EQ(acc[1].item<double>(), 0.0) << "no accuracy for mse";
  // A [B] target takes a [B, 1] output.
  at::Tensor y1 = at::tensor(std::vector<float>{1, 2});
  EXPECT_NEAR(o.mean_loss(at::tensor(std::vector<float>{0, 0}).view({2, 1}), y1).item<double>(), 2.5, 1e-6);
}

TEST(DeviceData, CrossEntropyCountsCorrectPredictions) {
  Objective o(ModelSpec{});
  EXPECT_TRUE(o.classifies());
  at::Tensor out = at::tensor(std::vector<float>{2, 0, 0, 2, 2, 0}).view({3, 2});
  at::Tensor y = at::tensor(std::vector<int64_t>{0, 1, 1});
  at::Tensor acc = at::zeros({3}, at::kDouble);
  o.add_sums(out, y, acc);
  EXPECT_EQ(acc[1].item<double>(), 2.0);
  EXPECT_NEAR(acc[0].item<double>(), 3.0 * o.mean_loss(out, y).item<double>(), 1e-6);
}

TEST(DeviceData, ADataSetLargerThanTheDeviceIsRefusedWithTheSizes) {
  Dataset train = floats(1000, {}), test = floats(100, {});
  const int64_t need = train.bytes() + test.bytes();
  EXPECT_NO_THROW(require_fits_device(train, test, need, "cuda:0"));
  try {
    require_fits_device(train, test, need - 1, "cuda:0");
    ADD_FAILURE() << "no DataError";
  } catch (const DataError& e) {
    const std::string w = e.what();
    EXPECT_NE(w.find("cuda:0"), std::string::npos) << w;
    EXPECT_NE(w.find("data.train_size"), std::string::npos) << w;
    EXPECT_NE(w.find("MB"), std::string::npos) << w;
  }
}

TEST(DeviceData, ModelShapeIsClassesOrTargetWidth) {
  EXPECT_EQ(model_shape(bytes(2)).outputs, 2);
  EXPECT_EQ(model_shape(floats(2, {4})).outputs, 4);
  EXPECT_EQ(model_shape(floats(2, {})).outputs, 1);
  EXPECT_EQ(model_shape(floats(2, {})).sample_shape, (std::vector<int64_t>{3}));
}

}  // namespace
}  // namespace bs
