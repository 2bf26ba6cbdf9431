// Theorem 1 (global): rho_p(x) >= min_j g_j(x) / G_j(D), G_j(D) the largest
// ||grad g_j||_q over the whole domain. G_j(D) depends only on the model, c,
// j and p, so it is computed once per class c (all j together) and cached:
// in memory for the bound's life, and on disk under theorem1.cache_dir when
// that is set (one JSON file per model checksum, source, norm and seed).
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "bounds/formulas.h"
#include "bounds/sources.h"
#include "core/error.h"
#include "core/io.h"

namespace bb {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct ClassTable {
  torch::Tensor grad_norm;  // float64 [k, k] on the CPU: row c holds G_j(D); NaN: not computed
  torch::Tensor gradients;  // int64 [k]: gradient evaluations spent on row c
};

class Theorem1 : public SourcedBound {
 public:
  Theorem1(const std::string& label, Norm p, std::unique_ptr<GradNormSource> source, const BoundOptions& options)
      : SourcedBound(label, p, std::move(source), options) {}

  std::string name() const override { return describe({}); }

 protected:
  BoundResult compute(
      const Model& model,
      const torch::Tensor& x,
      const torch::Tensor& c,
      const BoundContext& context) const override {
    const Classifier& classifier = model.classifier;
    const int64_t k = classifier.num_classes();
    auto targets = other_classes(c, k);
    auto g = target_margins(classifier, x, c, targets);
    ClassTable& table = fill(model, x, c, context);
    auto c_cpu = c.cpu();
    auto rows = table.grad_norm.index_select(0, c_cpu).gather(1, targets.cpu());
    auto best = min_ratio(g, rows.to(g.device()), targets);
    BoundResult result;
    result.value = best.value;
    result.target = best.target;
    result.grad_norm = best.grad_norm;
    result.radius = torch::full_like(best.value, std::numeric_limits<double>::infinity());
    result.gradients = table.gradients.index_select(0, c_cpu).to(c.device());
    return result;
  }

 private:
  std::string cache_key(const Model& model, const BoundContext& context) const {
    // Estimated sources draw: their figures belong to the seed too.
    return fmt::format(
        "{}-{:016x}", model.sha256.substr(0, 16),
        hash_string(name() + (certified() ? std::string() : fmt::format("/seed={}", context.seed))));
  }

  std::string cache_file(const std::string& key) const {
    return (std::filesystem::path(options_.theorem1.cache_dir) / ("theorem1-" + key + ".json")).string();
  }

  // The rows G_j(D) of every class in c, computed where missing.
  ClassTable& fill(const Model& model, const torch::Tensor& x, const torch::Tensor& c, const BoundContext& context) const {
    const Classifier& classifier = model.classifier;
    const int64_t k = classifier.num_classes();
    const std::string key = cache_key(model, context);
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = tables_.find(key);
    if (found == tables_.end()) {
      ClassTable fresh{
          torch::full({k, k}, kNaN, torch::kFloat64), torch::zeros({k}, torch::kInt64)};
      if (!options_.theorem1.cache_dir.empty()) {
        load(cache_file(key), fresh, model);
      }
      found = tables_.emplace(key, fresh).first;
    }
    ClassTable& table = found->second;
    auto wanted = std::get<0>(at::_unique(c.cpu()));
    // A computed row has one NaN: its diagonal.
    auto missing = wanted.masked_select(
        torch::isnan(table.grad_norm.index_select(0, wanted)).sum(1) > 1);
    if (missing.numel() == 0) {
      return table;
    }
    const Box box = classifier.spec().domain;
    std::vector<int64_t> shape{missing.size(0)};
    shape.insert(shape.end(), x.sizes().begin() + 1, x.sizes().end());
    auto centers = torch::full(shape, (box.lo + box.hi) / 2, x.options());
    Region region = Region::domain(centers, norm(), box);
    auto classes = missing.to(c.device());
    auto targets = other_classes(classes, k);
    auto random = RandomStreams::derive(context.seed, name() + "/D", classes, c.device());
    auto rows = estimate(model, region, classes, targets, &random, context.starts);
    auto value = rows.value.cpu();
    auto spent = rows.gradients.cpu();
    auto t = targets.cpu();
    for (int64_t i = 0; i < missing.size(0); ++i) {
      const int64_t row = missing[i].item<int64_t>();
      table.grad_norm[row].index_put_({t[i]}, value[i]);
      table.gradients[row] = spent[i];
    }
    if (!options_.theorem1.cache_dir.empty()) {
      save(cache_file(key), table, model);
    }
    return table;
  }

  void load(const std::string& path, ClassTable& table, const Model& model) const {
    if (!std::filesystem::exists(path)) {
      return;
    }
    std::ifstream in(path);
    nlohmann::json doc;
    try {
      in >> doc;
    } catch (const nlohmann::json::exception& e) {
      throw Error(fmt::format("{}: malformed Theorem 1 cache ({}); delete it to recompute", path, e.what()));
    }
    const int64_t k = table.grad_norm.size(0);
    BB_CHECK(
        doc.value("model_sha256", "") == model.sha256 && doc.value("method", "") == name() &&
            doc.contains("rows") && doc["rows"].is_object(),
        "{}: a Theorem 1 cache of another model or method; delete it to recompute",
        path);
    for (const auto& [cls, row] : doc["rows"].items()) {
      const int64_t r = std::stoll(cls);
      BB_CHECK(r >= 0 && r < k && row.is_array() && static_cast<int64_t>(row.size()) == k,
               "{}: malformed row for class {}", path, cls);
      for (int64_t j = 0; j < k; ++j) {
        table.grad_norm[r][j] = row[j].is_null() ? kNaN : row[j].get<double>();
      }
      table.gradients[r] = doc["gradients"].value(cls, int64_t{0});
    }
  }

  void save(const std::string& path, const ClassTable& table, const Model& model) const {
    nlohmann::json doc{{"model", model.source}, {"model_sha256", model.sha256}, {"method", name()},
                       {"norm", norm_name(norm())}, {"rows", nlohmann::json::object()},
                       {"gradients", nlohmann::json::object()}};
    const int64_t k = table.grad_norm.size(0);
    auto values = table.grad_norm.accessor<double, 2>();
    for (int64_t r = 0; r < k; ++r) {
      if (torch::isnan(table.grad_norm[r]).sum().item<int64_t>() > 1) {
        continue;
      }
      nlohmann::json row = nlohmann::json::array();
      for (int64_t j = 0; j < k; ++j) {
        row.push_back(std::isnan(values[r][j]) ? nlohmann::json() : nlohmann::json(values[r][j]));
      }
      doc["rows"][std::to_string(r)] = row;
      doc["gradients"][std::to_string(r)] = table.gradients[r].item<int64_t>();
    }
    write_atomically(path, doc.dump(1) + "\n");
  }

  mutable std::mutex mutex_;
  mutable std::map<std::string, ClassTable> tables_;
};

}  // namespace

std::unique_ptr<Bound> make_theorem1(
    const std::string& label, Norm p, std::unique_ptr<GradNormSource> source, const BoundOptions& options) {
  return std::make_unique<Theorem1>(label, p, std::move(source), options);
}

}  // namespace bb
