#include "data/dataset.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <sys/stat.h>

#include "data/hdf5_data.h"
#include "data/idx.h"
#include "util/errors.h"
#include "util/rng.h"

namespace bs {
namespace {

bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Dataset from_idx(const std::string& images_path, const std::string& labels_path, int64_t limit) {
  // Only the first `limit` samples are inflated: a 10000-sample cut of
  // Fashion-MNIST reads a sixth of the 47 MB image file, which every rank
  // loads.
  IdxArray im = read_idx(images_path, limit);
  IdxArray lb = read_idx(labels_path, limit);
  if (im.dims.size() != 3) throw DataError(images_path + ": expected a 3-d image array [N, rows, cols]");
  if (lb.dims.size() != 1) throw DataError(labels_path + ": expected a 1-d label array [N]");
  if (im.dims[0] != lb.dims[0])
    throw DataError(images_path + " has " + std::to_string(im.dims[0]) + " images but " + labels_path + " has " +
                    std::to_string(lb.dims[0]) + " labels");
  Dataset d;
  d.size = limit > 0 ? std::min(limit, im.dims[0]) : im.dims[0];
  if (im.dims[1] != 28 || im.dims[2] != 28)
    throw DataError(images_path + ": expected 28x28 images, got " + std::to_string(im.dims[1]) + "x" +
                    std::to_string(im.dims[2]));
  d.sample_shape = {1, 28, 28};
  im.data.resize(static_cast<size_t>(d.size * d.sample_numel()));
  d.images = std::move(im.data);
  d.labels.assign(lb.data.begin(), lb.data.begin() + d.size);
  for (auto l : d.labels)
    if (l < 0 || l >= d.num_classes) throw DataError(labels_path + ": label " + std::to_string(l) + " outside 0..9");
  return d;
}

// Ten classes, each a fixed random template; a sample is its class template
// plus Gaussian pixel noise. Linearly separable at low noise, harder above 1.
Dataset synthetic(int64_t n, const std::vector<std::vector<float>>& templates, double noise, uint64_t seed) {
  Dataset d;
  d.size = n;
  d.sample_shape = {1, 28, 28};
  const size_t pix = size_t{28} * 28;
  d.images.resize(static_cast<size_t>(n) * pix);
  d.labels.resize(static_cast<size_t>(n));
  Rng rng(seed);
  for (int64_t i = 0; i < n; ++i) {
    int64_t c = static_cast<int64_t>(rng.below(10));
    d.labels[static_cast<size_t>(i)] = c;
    for (size_t p = 0; p < pix; ++p) {
      double v = templates[static_cast<size_t>(c)][p] + 48.0 * noise * rng.normal();
      d.images[static_cast<size_t>(i) * pix + p] = static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
    }
  }
  return d;
}

}  // namespace

int64_t Dataset::sample_numel() const {
  int64_t n = 1;
  for (auto d : sample_shape) n *= d;
  return n;
}

int64_t Dataset::target_numel() const {
  if (target_type == TargetType::Class) return 1;
  int64_t n = 1;
  for (auto d : target_shape) n *= d;
  return n;
}

int64_t Dataset::bytes() const {
  return static_cast<int64_t>(images.size() * sizeof(uint8_t) + features.size() * sizeof(float) +
                              labels.size() * sizeof(int64_t) + targets.size() * sizeof(float));
}

std::vector<std::string> data_files(const std::string& study_file, const DataSpec& spec) {
  if (spec.name == "synthetic") return {};
  if (spec.name == "hdf5") return hdf5_data_files(study_file, spec);
  const char* names[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                         "t10k-labels-idx1-ubyte"};
  std::vector<std::string> out;
  for (const char* n : names) {
    std::string base = spec.root + "/" + n;
    if (exists(base + ".gz"))
      out.push_back(base + ".gz");
    else if (exists(base))
      out.push_back(base);
    else
      throw ConfigError(
          study_file, "data.root",
          "'" + spec.root + "' has no " + n + "[.gz]; point data.root at a folder with the four " + spec.name +
              " IDX files" +
              (spec.name == "fashion-mnist" ? " (Debian: apt-get install dataset-fashion-mnist puts them in "
                                              "/usr/share/datasets/fashion-mnist)"
                                            : ""));
  }
  return out;
}

DataSplits load_data(const std::string& study_file, const DataSpec& spec, uint64_t study_seed) {
  if (spec.name == "hdf5") return load_hdf5(study_file, spec);
  DataSplits s;
  if (spec.name == "synthetic") {
    Rng rng(mix_seed({study_seed, 0x5e7u}));
    std::vector<std::vector<float>> templates(10, std::vector<float>(size_t{28} * 28));
    for (auto& t : templates)
      for (auto& v : t) v = static_cast<float>(64 + rng.below(128));
    s.train = synthetic(spec.effective_train_size(), templates, spec.synthetic_noise, mix_seed({study_seed, 1}));
    s.test = synthetic(spec.effective_test_size(), templates, spec.synthetic_noise, mix_seed({study_seed, 2}));
    s.train.mean = s.test.mean = 0.5f;
    s.train.stdev = s.test.stdev = 0.25f;
    return s;
  }
  auto files = data_files(study_file, spec);
  s.train = from_idx(files[0], files[1], spec.train_size);
  s.test = from_idx(files[2], files[3], spec.test_size);
  // The usual per-dataset constants, so results compare with published numbers.
  float mean = spec.name == "mnist" ? 0.1307f : 0.2860f;
  float stdev = spec.name == "mnist" ? 0.3081f : 0.3530f;
  s.train.mean = s.test.mean = mean;
  s.train.stdev = s.test.stdev = stdev;
  return s;
}

void check_loss_fits(const std::string& study_file, const std::string& loss, const DataSplits& d) {
  const Dataset& t = d.train;
  const bool labels = t.target_type == TargetType::Class;
  if (loss == "cross_entropy" && labels) return;
  if (loss == "mse" && !labels) return;
  if (loss != "cross_entropy" && loss != "mse") throw std::invalid_argument("check_loss_fits: unknown loss " + loss);
  std::string per_sample = "one per sample";
  if (!t.target_shape.empty()) per_sample = "[" + std::to_string(t.target_shape[0]) + "] per sample";
  const std::string holds =
      labels ? "data.train_y holds int64 class labels (" + std::to_string(t.num_classes) + " classes)"
             : "data.train_y holds float targets (" + per_sample + ")";
  const std::string fits = labels ? "cross_entropy (for class labels)" : "mse (for float targets)";
  throw ConfigError(study_file, "model.loss",
                    "'" + loss + "' does not fit the data: " + holds + "; use model.loss: " + fits);
}

}  // namespace bs
