#include "worker/model/gguf_writer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace ringserve::model {
namespace {

class ByteSink {
 public:
  explicit ByteSink(std::vector<uint8_t>* out) : out_(out) {}
  template <typename T>
  void Put(T v) {
    Append(&v, sizeof(T));
  }
  void PutString(const std::string& s) {
    Put<uint64_t>(s.size());
    Append(s.data(), s.size());
  }
  // resize + memcpy rather than insert: GCC 12 reports a false stringop-overflow on the
  // latter.
  void Append(const void* p, size_t n) {
    if (n == 0) return;
    const size_t at = out_->size();
    out_->resize(at + n);
    std::memcpy(out_->data() + at, p, n);
  }
  void PadTo(uint64_t alignment) {
    while (out_->size() % alignment != 0) out_->push_back(0);
  }

 private:
  std::vector<uint8_t>* out_;
};

int64_t AsInt(const GgufValue& v) {
  if (const auto* u = std::get_if<uint64_t>(&v.value)) return static_cast<int64_t>(*u);
  if (const auto* b = std::get_if<bool>(&v.value)) return *b ? 1 : 0;
  if (const auto* d = std::get_if<double>(&v.value)) return static_cast<int64_t>(*d);
  if (const auto* i = std::get_if<int64_t>(&v.value)) return *i;
  return 0;
}

double AsDouble(const GgufValue& v) {
  if (const auto* d = std::get_if<double>(&v.value)) return *d;
  return static_cast<double>(AsInt(v));
}

// Writes one scalar of `type`; integers and floats come widened.
void PutScalar(ByteSink& sink, GgufType type, int64_t i, double d, const std::string& s) {
  switch (type) {
    case GgufType::kUint8:
      sink.Put(static_cast<uint8_t>(i));
      break;
    case GgufType::kInt8:
      sink.Put(static_cast<int8_t>(i));
      break;
    case GgufType::kUint16:
      sink.Put(static_cast<uint16_t>(i));
      break;
    case GgufType::kInt16:
      sink.Put(static_cast<int16_t>(i));
      break;
    case GgufType::kUint32:
      sink.Put(static_cast<uint32_t>(i));
      break;
    case GgufType::kInt32:
      sink.Put(static_cast<int32_t>(i));
      break;
    case GgufType::kUint64:
      sink.Put(static_cast<uint64_t>(i));
      break;
    case GgufType::kInt64:
      sink.Put(i);
      break;
    case GgufType::kFloat32:
      sink.Put(static_cast<float>(d));
      break;
    case GgufType::kFloat64:
      sink.Put(d);
      break;
    case GgufType::kBool:
      sink.Put(static_cast<uint8_t>(i != 0));
      break;
    case GgufType::kString:
      sink.PutString(s);
      break;
    case GgufType::kArray:
      break;
  }
}

void PutValue(ByteSink& sink, const GgufValue& v) {
  sink.Put(static_cast<uint32_t>(v.type));
  if (v.type != GgufType::kArray) {
    const auto* s = std::get_if<std::string>(&v.value);
    PutScalar(sink, v.type, AsInt(v), AsDouble(v), s != nullptr ? *s : std::string());
    return;
  }
  sink.Put(static_cast<uint32_t>(v.array_type));
  if (const auto* a = std::get_if<std::vector<std::string>>(&v.value)) {
    sink.Put<uint64_t>(a->size());
    for (const auto& s : *a) PutScalar(sink, v.array_type, 0, 0, s);
  } else if (const auto* a = std::get_if<std::vector<double>>(&v.value)) {
    sink.Put<uint64_t>(a->size());
    for (double d : *a) PutScalar(sink, v.array_type, static_cast<int64_t>(d), d, {});
  } else if (const auto* a = std::get_if<std::vector<int64_t>>(&v.value)) {
    sink.Put<uint64_t>(a->size());
    for (int64_t i : *a) PutScalar(sink, v.array_type, i, static_cast<double>(i), {});
  } else {
    sink.Put<uint64_t>(0);
  }
}

uint32_t GgmlTypeOf(kernels::DType dtype) {
  switch (dtype) {
    case kernels::DType::kF16:
      return kGgmlTypeF16;
    case kernels::DType::kBF16:
      return kGgmlTypeBF16;
    case kernels::DType::kQ8_0:
      return kGgmlTypeQ8_0;
    default:
      return kGgmlTypeF32;
  }
}

}  // namespace

std::vector<uint8_t> EncodeTensorData(kernels::DType dtype, std::span<const float> values) {
  std::vector<uint8_t> out(kernels::DTypeBytes(dtype, values.size()));
  switch (dtype) {
    case kernels::DType::kF16:
    case kernels::DType::kBF16:
      for (size_t i = 0; i < values.size(); ++i) {
        const uint16_t h = dtype == kernels::DType::kF16 ? kernels::FloatToHalf(values[i])
                                                         : kernels::FloatToBFloat16(values[i]);
        std::memcpy(out.data() + 2 * i, &h, 2);
      }
      break;
    case kernels::DType::kQ8_0:
      for (size_t b = 0; b < values.size() / kernels::kQ8_0BlockValues; ++b) {
        QuantizeQ8_0Block(values.data() + b * kernels::kQ8_0BlockValues,
                          out.data() + b * kernels::kQ8_0BlockBytes);
      }
      break;
    default:
      std::memcpy(out.data(), values.data(), out.size());
  }
  return out;
}

GgufWriter::GgufWriter(uint32_t alignment) : alignment_(alignment) {
  if (alignment != 32) SetUint32("general.alignment", alignment);
}

void GgufWriter::Set(const std::string& key, GgufValue value) {
  metadata_.emplace_back(key, std::move(value));
}
void GgufWriter::SetUint32(const std::string& key, uint32_t v) {
  Set(key, {GgufType::kUint32, GgufType::kUint32, uint64_t{v}});
}
void GgufWriter::SetInt32(const std::string& key, int32_t v) {
  Set(key, {GgufType::kInt32, GgufType::kUint32, int64_t{v}});
}
void GgufWriter::SetFloat32(const std::string& key, float v) {
  Set(key, {GgufType::kFloat32, GgufType::kUint32, double{v}});
}
void GgufWriter::SetBool(const std::string& key, bool v) {
  Set(key, {GgufType::kBool, GgufType::kUint32, v});
}
void GgufWriter::SetString(const std::string& key, std::string v) {
  Set(key, {GgufType::kString, GgufType::kUint32, std::move(v)});
}
void GgufWriter::SetStringArray(const std::string& key, std::vector<std::string> v) {
  Set(key, {GgufType::kArray, GgufType::kString, std::move(v)});
}
void GgufWriter::SetFloat32Array(const std::string& key, std::vector<double> v) {
  Set(key, {GgufType::kArray, GgufType::kFloat32, std::move(v)});
}
void GgufWriter::SetInt32Array(const std::string& key, std::vector<int64_t> v) {
  Set(key, {GgufType::kArray, GgufType::kInt32, std::move(v)});
}

namespace {

// ggml's `ne` of a row-major shape (reversed); INVALID_ARGUMENT unless `values` fill it.
absl::StatusOr<std::vector<uint64_t>> GgmlDims(const std::string& name,
                                               const std::vector<int64_t>& shape,
                                               std::span<const float> values) {
  int64_t count = 1;
  std::vector<uint64_t> ne;
  for (auto it = shape.rbegin(); it != shape.rend(); ++it) {
    count *= *it;
    ne.push_back(static_cast<uint64_t>(*it));
  }
  if (shape.empty() || count != static_cast<int64_t>(values.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", name, "': ", values.size(), " values do not fill its shape"));
  }
  return ne;
}

}  // namespace

absl::Status GgufWriter::AddTensor(const std::string& name, const std::vector<int64_t>& shape,
                                   kernels::DType dtype, std::span<const float> values) {
  RS_ASSIGN_OR_RETURN(std::vector<uint64_t> ne, GgmlDims(name, shape, values));
  if (dtype == kernels::DType::kQ8_0 && shape.back() % kernels::kQ8_0BlockValues != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", name, "': Q8_0 rows must be a multiple of 32 values"));
  }
  if (dtype == kernels::DType::kI32) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': i32 is not supported"));
  }
  AddRawTensor(name, GgmlTypeOf(dtype), std::move(ne), EncodeTensorData(dtype, values));
  return absl::OkStatus();
}

absl::Status GgufWriter::AddPackedTensor(const std::string& name, const std::vector<int64_t>& shape,
                                         Packing packing, std::span<const float> values) {
  RS_ASSIGN_OR_RETURN(std::vector<uint64_t> ne, GgmlDims(name, shape, values));
  if (packing == Packing::kAsStored) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': no packing given"));
  }
  const PackingInfo& info = InfoOf(packing);
  if (shape.back() % info.block_values != 0) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': ", std::string(info.name),
                                                   " needs whole blocks of ", info.block_values,
                                                   " values in every row, not ", shape.back()));
  }
  const auto count = static_cast<int64_t>(values.size());
  std::vector<uint8_t> data(static_cast<size_t>(PackedBytes(packing, count)));
  Pack(packing, values.data(), count, data.data());
  AddRawTensor(name, info.ggml_type, std::move(ne), std::move(data));
  return absl::OkStatus();
}

void GgufWriter::AddRawTensor(const std::string& name, uint32_t ggml_type, std::vector<uint64_t> ne,
                              std::vector<uint8_t> data, std::optional<uint64_t> offset_override) {
  tensors_.push_back({name, ggml_type, std::move(ne), std::move(data), offset_override});
}

std::vector<uint8_t> GgufWriter::Build(uint32_t version) const {
  std::vector<uint8_t> out;
  ByteSink sink(&out);
  sink.Put<uint32_t>(0x46554747);  // "GGUF"
  sink.Put<uint32_t>(version);
  sink.Put<uint64_t>(tensors_.size());
  sink.Put<uint64_t>(metadata_.size());
  for (const auto& [key, value] : metadata_) {
    sink.PutString(key);
    PutValue(sink, value);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    sink.PutString(t.name);
    sink.Put<uint32_t>(t.ne.size());
    for (uint64_t n : t.ne) sink.Put(n);
    sink.Put(t.ggml_type);
    sink.Put(t.offset_override.value_or(offset));
    offset += (t.data.size() + alignment_ - 1) / alignment_ * alignment_;
  }
  sink.PadTo(alignment_);
  for (const auto& t : tensors_) {
    sink.Append(t.data.data(), t.data.size());
    sink.PadTo(alignment_);
  }
  return out;
}

absl::Status GgufWriter::WriteFile(const std::string& path) const {
  const std::vector<uint8_t> bytes = Build();
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  f.close();
  if (!f) return absl::InternalError(absl::StrCat(path, ": cannot write"));
  return absl::OkStatus();
}

}  // namespace ringserve::model
