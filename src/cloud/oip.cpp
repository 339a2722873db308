#include "cloud/oip.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>

namespace edgefm::cloud {

static_assert(std::endian::native == std::endian::little,
              "binary tensor data is little-endian; this codec copies host memory as is");

namespace {

[[noreturn]] void fail(const std::string& context, const std::string& expected,
                       const std::string& got) {
  throw ProtocolError(context + ": expected " + expected + ", got " + got);
}

// A client value quoted in an error message: dumped without throwing (invalid UTF-8 is
// replaced) and cut short, so a huge or odd value cannot make the error itself fail.
std::string snippet(const json& value) {
  std::string text = dump_json(value);
  if (text.size() > 200) text = text.substr(0, 200) + "...";
  return text;
}

std::string tensor_context(const std::string& name) { return "tensor '" + name + "'"; }

template <typename T>
std::vector<T> copy_out(const Tensor& tensor, DataType want) {
  if (tensor.datatype != want) {
    fail(tensor_context(tensor.name), std::string("datatype ") + datatype_name(want),
         datatype_name(tensor.datatype));
  }
  std::vector<T> out(tensor.raw.size() / sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), tensor.raw.data(), out.size() * sizeof(T));
  return out;
}

template <typename T>
Tensor make_numeric(std::string name, DataType type, std::vector<int64_t> shape,
                    const T* values, size_t count) {
  Tensor t;
  t.name = std::move(name);
  t.datatype = type;
  t.shape = std::move(shape);
  int64_t expected = shape_element_count(t.shape, t.name);
  if (static_cast<int64_t>(count) != expected) {
    fail(tensor_context(t.name),
         std::to_string(expected) + " elements for shape " + shape_string(t.shape),
         std::to_string(count));
  }
  t.raw.resize(count * sizeof(T));
  if (count > 0) std::memcpy(t.raw.data(), values, count * sizeof(T));
  return t;
}

// Flattens a (possibly nested, row-major) JSON "data" array into `out`.
void flatten(const json& value, std::vector<const json*>& out) {
  if (value.is_array()) {
    for (const auto& element : value) flatten(element, out);
  } else {
    out.push_back(&value);
  }
}

std::string element_context(const std::string& name, size_t index) {
  return tensor_context(name) + " element " + std::to_string(index);
}

template <typename T>
void append_integer(const json& element, const std::string& name, size_t index,
                    std::vector<uint8_t>& raw) {
  T value{};
  bool ok = false;
  if (element.is_number_unsigned()) {
    auto v = element.get<uint64_t>();
    ok = v <= static_cast<uint64_t>(std::numeric_limits<T>::max());
    value = static_cast<T>(v);
  } else if (element.is_number_integer()) {
    auto v = element.get<int64_t>();
    ok = v >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
         (v < 0 || static_cast<uint64_t>(v) <= static_cast<uint64_t>(std::numeric_limits<T>::max()));
    value = static_cast<T>(v);
  }
  if (!ok) {
    fail(element_context(name, index),
         "an integer in [" + std::to_string(int64_t{std::numeric_limits<T>::min()}) + ", " +
             std::to_string(uint64_t{std::numeric_limits<T>::max()}) + "]",
         snippet(element));
  }
  size_t at = raw.size();
  raw.resize(at + sizeof(T));
  std::memcpy(raw.data() + at, &value, sizeof(T));
}

// Fills a tensor's elements from its JSON "data" array.
void read_json_data(const json& data, Tensor& t, int64_t expected_count) {
  std::vector<const json*> elements;
  flatten(data, elements);
  if (static_cast<int64_t>(elements.size()) != expected_count) {
    fail(tensor_context(t.name),
         std::to_string(expected_count) + " elements for shape " + shape_string(t.shape),
         std::to_string(elements.size()) + " in 'data'");
  }
  switch (t.datatype) {
    case DataType::fp32: {
      t.raw.resize(elements.size() * sizeof(float));
      auto* out = reinterpret_cast<float*>(t.raw.data());
      for (size_t i = 0; i < elements.size(); ++i) {
        if (!elements[i]->is_number()) {
          fail(element_context(t.name, i), "a number", snippet(*elements[i]));
        }
        const double v = elements[i]->get<double>();
        // Converting a double beyond the float range is undefined behaviour, not infinity.
        if (std::isfinite(v) && std::fabs(v) > std::numeric_limits<float>::max()) {
          fail(element_context(t.name, i), "a number within the FP32 range", snippet(*elements[i]));
        }
        out[i] = static_cast<float>(v);
      }
      break;
    }
    case DataType::int64:
      for (size_t i = 0; i < elements.size(); ++i) {
        append_integer<int64_t>(*elements[i], t.name, i, t.raw);
      }
      break;
    case DataType::int32:
      for (size_t i = 0; i < elements.size(); ++i) {
        append_integer<int32_t>(*elements[i], t.name, i, t.raw);
      }
      break;
    case DataType::uint8:
      for (size_t i = 0; i < elements.size(); ++i) {
        append_integer<uint8_t>(*elements[i], t.name, i, t.raw);
      }
      break;
    case DataType::bytes:
      t.strings.reserve(elements.size());
      for (size_t i = 0; i < elements.size(); ++i) {
        if (!elements[i]->is_string()) {
          fail(element_context(t.name, i), "a string", snippet(*elements[i]));
        }
        t.strings.push_back(elements[i]->get<std::string>());
      }
      break;
  }
}

// Fills a tensor's elements from its binary tensor data.
void read_binary_data(std::string_view bytes, Tensor& t, int64_t expected_count) {
  if (t.datatype != DataType::bytes) {
    size_t expected = static_cast<size_t>(expected_count) * datatype_size(t.datatype);
    if (bytes.size() != expected) {
      fail(tensor_context(t.name),
           "binary_data_size " + std::to_string(expected) + " (shape " + shape_string(t.shape) +
               " of " + datatype_name(t.datatype) + ")",
           std::to_string(bytes.size()));
    }
    t.raw.assign(bytes.begin(), bytes.end());
    return;
  }
  size_t at = 0;
  while (at < bytes.size()) {
    if (bytes.size() - at < 4) {
      fail(tensor_context(t.name), "a 4-byte length before each BYTES element",
           std::to_string(bytes.size() - at) + " bytes left");
    }
    uint32_t length = 0;
    std::memcpy(&length, bytes.data() + at, 4);
    at += 4;
    if (bytes.size() - at < length) {
      fail(element_context(t.name, t.strings.size()), std::to_string(length) + " bytes",
           std::to_string(bytes.size() - at) + " left in binary_data_size");
    }
    t.strings.emplace_back(bytes.substr(at, length));
    at += length;
  }
  if (static_cast<int64_t>(t.strings.size()) != expected_count) {
    fail(tensor_context(t.name),
         std::to_string(expected_count) + " BYTES elements for shape " + shape_string(t.shape),
         std::to_string(t.strings.size()) + " in its binary data");
  }
}

struct BinaryCursor {
  std::string_view tail;  // the body after the JSON header
  size_t used = 0;
  bool has_header = false;
};

int64_t read_binary_size(const json& parameters, const std::string& name) {
  const auto& size = parameters.at("binary_data_size");
  if (!size.is_number_integer() || size.get<int64_t>() < 0) {
    fail(tensor_context(name), "parameters.binary_data_size to be a non-negative integer",
         snippet(size));
  }
  return size.get<int64_t>();
}

Tensor decode_tensor(const json& j, BinaryCursor& cursor, const std::string& what) {
  if (!j.is_object()) fail(what, "a tensor object", snippet(j));
  auto field = [&](const char* key) -> const json& {
    if (!j.contains(key)) throw ProtocolError(what + ": missing field '" + key + "'");
    return j.at(key);
  };
  const json& name_field = field("name");
  if (!name_field.is_string()) fail(what + " field 'name'", "a string", snippet(name_field));
  Tensor t;
  t.name = name_field.get<std::string>();
  std::string context = tensor_context(t.name);

  const json& shape_field = field("shape");
  if (!shape_field.is_array()) fail(context + " field 'shape'", "an array", snippet(shape_field));
  for (const auto& dim : shape_field) {
    if (!dim.is_number_integer()) {
      fail(context + " field 'shape'", "integer dimensions", snippet(shape_field));
    }
    t.shape.push_back(dim.get<int64_t>());
  }
  int64_t count = shape_element_count(t.shape, t.name);

  const json& type_field = field("datatype");
  if (!type_field.is_string()) fail(context + " field 'datatype'", "a string", snippet(type_field));
  t.datatype = parse_datatype(type_field.get<std::string>(), t.name);

  const json* parameters = nullptr;
  if (j.contains("parameters")) {
    parameters = &j.at("parameters");
    if (!parameters->is_object()) {
      fail(context + " field 'parameters'", "an object", snippet(*parameters));
    }
  }
  if (parameters != nullptr && parameters->contains("binary_data_size")) {
    int64_t size = read_binary_size(*parameters, t.name);
    if (j.contains("data")) {
      fail(context, "either 'data' or parameters.binary_data_size", "both");
    }
    if (!cursor.has_header) {
      fail(context + " (parameters.binary_data_size " + std::to_string(size) + ")",
           std::string("binary tensor data announced by an ") + kHeaderContentLength + " header",
           "no such header");
    }
    size_t left = cursor.tail.size() - cursor.used;
    if (static_cast<uint64_t>(size) > left) {
      fail(context,
           std::to_string(size) + " bytes of binary tensor data (parameters.binary_data_size)",
           "a truncated body with " + std::to_string(left) + " bytes left");
    }
    read_binary_data(cursor.tail.substr(cursor.used, static_cast<size_t>(size)), t, count);
    cursor.used += static_cast<size_t>(size);
    t.binary = true;
    return t;
  }
  read_json_data(field("data"), t, count);
  return t;
}

json encode_tensor(const Tensor& t, std::string& binary_tail) {
  json j = {{"name", t.name}, {"datatype", datatype_name(t.datatype)}, {"shape", t.shape}};
  if (t.binary) {
    size_t before = binary_tail.size();
    if (t.datatype == DataType::bytes) {
      for (const auto& s : t.strings) {
        auto length = static_cast<uint32_t>(s.size());
        binary_tail.append(reinterpret_cast<const char*>(&length), 4);
        binary_tail.append(s);
      }
    } else {
      binary_tail.append(reinterpret_cast<const char*>(t.raw.data()), t.raw.size());
    }
    j["parameters"] = {{"binary_data_size", binary_tail.size() - before}};
    return j;
  }
  json data = json::array();
  auto& array = data.get_ref<json::array_t&>();
  switch (t.datatype) {
    case DataType::fp32:
      for (float v : t.floats()) array.emplace_back(static_cast<double>(v));
      break;
    case DataType::int64:
      for (int64_t v : t.int64s()) array.emplace_back(v);
      break;
    case DataType::int32:
      for (int32_t v : t.int32s()) array.emplace_back(v);
      break;
    case DataType::uint8:
      for (uint8_t v : t.raw) array.emplace_back(static_cast<unsigned>(v));
      break;
    case DataType::bytes:
      for (const auto& s : t.strings) array.emplace_back(s);
      break;
  }
  j["data"] = std::move(data);
  return j;
}

EncodedBody finish_body(const json& header, const std::string& binary_tail) {
  EncodedBody out;
  out.body = header.dump();
  if (!binary_tail.empty()) {
    out.json_size = out.body.size();
    out.body += binary_tail;
  }
  return out;
}

// Splits a body into its JSON header (parsed) and the binary tail.
json parse_header(std::string_view body, std::optional<size_t> json_size, BinaryCursor& cursor,
                  const char* what) {
  std::string_view text = body;
  if (json_size) {
    if (*json_size > body.size()) {
      fail(kHeaderContentLength,
           "at most the body size " + std::to_string(body.size()),
           std::to_string(*json_size));
    }
    text = body.substr(0, *json_size);
    cursor.tail = body.substr(*json_size);
    cursor.has_header = true;
  }
  json header;
  try {
    header = parse_untrusted_json(text);
  } catch (const JsonInputError& e) {
    throw ProtocolError(std::string("malformed JSON in ") + what + ": " + e.what());
  }
  if (!header.is_object()) fail(what, "a JSON object", header.type_name());
  return header;
}

void check_tail_used(const BinaryCursor& cursor) {
  if (cursor.used != cursor.tail.size()) {
    fail("binary tensor data",
         std::to_string(cursor.used) + " bytes after the JSON header (the sum of binary_data_size)",
         std::to_string(cursor.tail.size()));
  }
}

std::vector<Tensor> decode_tensors(const json& header, const char* key, BinaryCursor& cursor,
                                   const char* what, bool required) {
  std::vector<Tensor> tensors;
  if (!header.contains(key)) {
    if (required) throw ProtocolError(std::string(what) + ": missing field '" + key + "'");
    return tensors;
  }
  const json& list = header.at(key);
  if (!list.is_array()) fail(std::string(what) + " field '" + key + "'", "an array", list.type_name());
  std::set<std::string> names;
  for (size_t i = 0; i < list.size(); ++i) {
    tensors.push_back(decode_tensor(list[i], cursor, std::string(what) + " " + key + "[" +
                                                         std::to_string(i) + "]"));
    if (!names.insert(tensors.back().name).second) {
      fail(std::string(what) + " " + key, "unique tensor names",
           "'" + tensors.back().name + "' twice");
    }
  }
  return tensors;
}

std::string optional_string(const json& header, const char* key, const char* what) {
  if (!header.contains(key)) return {};
  const json& value = header.at(key);
  if (!value.is_string()) fail(std::string(what) + " field '" + key + "'", "a string", snippet(value));
  return value.get<std::string>();
}

json optional_parameters(const json& header, const std::string& what) {
  if (!header.contains("parameters")) return json::object();
  const json& value = header.at("parameters");
  if (!value.is_object()) fail(what + " field 'parameters'", "an object", snippet(value));
  return value;
}

bool bool_parameter(const json& parameters, const char* key, const std::string& what) {
  if (!parameters.contains(key)) return false;
  const json& value = parameters.at(key);
  if (!value.is_boolean()) fail(what + " parameter '" + key + "'", "true or false", snippet(value));
  return value.get<bool>();
}

}  // namespace

const char* datatype_name(DataType type) {
  switch (type) {
    case DataType::fp32: return "FP32";
    case DataType::int64: return "INT64";
    case DataType::int32: return "INT32";
    case DataType::uint8: return "UINT8";
    case DataType::bytes: return "BYTES";
  }
  return "?";
}

DataType parse_datatype(const std::string& text, const std::string& tensor_name) {
  for (auto type : {DataType::fp32, DataType::int64, DataType::int32, DataType::uint8,
                    DataType::bytes}) {
    if (text == datatype_name(type)) return type;
  }
  fail(tensor_context(tensor_name), "datatype one of FP32, INT64, INT32, UINT8, BYTES",
       "'" + text + "'");
}

size_t datatype_size(DataType type) {
  switch (type) {
    case DataType::fp32: return 4;
    case DataType::int64: return 8;
    case DataType::int32: return 4;
    case DataType::uint8: return 1;
    case DataType::bytes: return 0;
  }
  return 0;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out += ",";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

int64_t shape_element_count(const std::vector<int64_t>& shape, const std::string& tensor_name) {
  int64_t count = 1;
  for (int64_t dim : shape) {
    if (dim < 0) {
      fail(tensor_context(tensor_name) + " shape " + shape_string(shape),
           "non-negative dimensions", std::to_string(dim));
    }
    // Far above any body the server accepts, and safe from overflow in byte counts.
    constexpr int64_t kMaxElements = int64_t{1} << 40;
    if (dim > 0 && count > kMaxElements / dim) {
      fail(tensor_context(tensor_name) + " shape " + shape_string(shape),
           "at most 2^40 elements", "more");
    }
    count *= dim;
  }
  return count;
}

int64_t Tensor::element_count() const {
  if (datatype == DataType::bytes) return static_cast<int64_t>(strings.size());
  return static_cast<int64_t>(raw.size() / datatype_size(datatype));
}

size_t Tensor::binary_size() const {
  if (datatype != DataType::bytes) return raw.size();
  size_t size = 0;
  for (const auto& s : strings) size += 4 + s.size();
  return size;
}

std::vector<float> Tensor::floats() const { return copy_out<float>(*this, DataType::fp32); }
std::vector<int64_t> Tensor::int64s() const { return copy_out<int64_t>(*this, DataType::int64); }
std::vector<int32_t> Tensor::int32s() const { return copy_out<int32_t>(*this, DataType::int32); }

const std::vector<uint8_t>& Tensor::uint8s() const {
  if (datatype != DataType::uint8) {
    fail(tensor_context(name), "datatype UINT8", datatype_name(datatype));
  }
  return raw;
}

Tensor Tensor::from_floats(std::string name, std::vector<int64_t> shape,
                           const std::vector<float>& values) {
  return from_floats(std::move(name), std::move(shape), values.data(), values.size());
}

Tensor Tensor::from_floats(std::string name, std::vector<int64_t> shape, const float* values,
                           size_t count) {
  return make_numeric(std::move(name), DataType::fp32, std::move(shape), values, count);
}

Tensor Tensor::from_int64s(std::string name, std::vector<int64_t> shape,
                           const std::vector<int64_t>& values) {
  return make_numeric(std::move(name), DataType::int64, std::move(shape), values.data(),
                      values.size());
}

Tensor Tensor::from_int32s(std::string name, std::vector<int64_t> shape,
                           const std::vector<int32_t>& values) {
  return make_numeric(std::move(name), DataType::int32, std::move(shape), values.data(),
                      values.size());
}

namespace {
void check_element_count(const Tensor& t, size_t count) {
  int64_t expected = shape_element_count(t.shape, t.name);
  if (static_cast<int64_t>(count) != expected) {
    fail(tensor_context(t.name),
         std::to_string(expected) + " elements for shape " + shape_string(t.shape),
         std::to_string(count));
  }
}
}  // namespace

Tensor Tensor::from_uint8s(std::string name, std::vector<int64_t> shape,
                           std::vector<uint8_t> values) {
  Tensor t;
  t.name = std::move(name);
  t.datatype = DataType::uint8;
  t.shape = std::move(shape);
  check_element_count(t, values.size());
  t.raw = std::move(values);
  return t;
}

Tensor Tensor::from_strings(std::string name, std::vector<int64_t> shape,
                            std::vector<std::string> values) {
  Tensor t;
  t.name = std::move(name);
  t.datatype = DataType::bytes;
  t.shape = std::move(shape);
  check_element_count(t, values.size());
  t.strings = std::move(values);
  return t;
}

const Tensor* InferRequest::input(const std::string& name) const {
  for (const auto& t : inputs) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

const Tensor* InferResponse::output(const std::string& name) const {
  for (const auto& t : outputs) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

EncodedBody encode_request(const InferRequest& request) {
  std::string tail;
  json header = json::object();
  if (!request.id.empty()) header["id"] = request.id;
  json parameters = request.parameters.is_object() ? request.parameters : json::object();
  if (request.binary_data_output) parameters["binary_data_output"] = true;
  if (!parameters.empty()) header["parameters"] = parameters;
  json inputs = json::array();
  for (const auto& t : request.inputs) inputs.push_back(encode_tensor(t, tail));
  header["inputs"] = std::move(inputs);
  if (!request.outputs.empty()) {
    json outputs = json::array();
    for (const auto& o : request.outputs) {
      json entry = {{"name", o.name}};
      if (o.binary) entry["parameters"] = {{"binary_data", true}};
      outputs.push_back(std::move(entry));
    }
    header["outputs"] = std::move(outputs);
  }
  return finish_body(header, tail);
}

EncodedBody encode_response(const InferResponse& response) {
  std::string tail;
  json header = {{"model_name", response.model_name}};
  if (!response.model_version.empty()) header["model_version"] = response.model_version;
  if (!response.id.empty()) header["id"] = response.id;
  if (response.parameters.is_object() && !response.parameters.empty()) {
    header["parameters"] = response.parameters;
  }
  json outputs = json::array();
  for (const auto& t : response.outputs) outputs.push_back(encode_tensor(t, tail));
  header["outputs"] = std::move(outputs);
  return finish_body(header, tail);
}

InferRequest decode_request(std::string_view body, std::optional<size_t> json_size) {
  const char* what = "inference request";
  BinaryCursor cursor;
  json header = parse_header(body, json_size, cursor, what);
  InferRequest request;
  request.id = optional_string(header, "id", what);
  request.parameters = optional_parameters(header, what);
  request.binary_data_output = bool_parameter(request.parameters, "binary_data_output", what);
  request.parameters.erase("binary_data_output");
  request.inputs = decode_tensors(header, "inputs", cursor, what, true);
  check_tail_used(cursor);
  if (header.contains("outputs")) {
    const json& outputs = header.at("outputs");
    if (!outputs.is_array()) fail("inference request field 'outputs'", "an array", outputs.type_name());
    for (size_t i = 0; i < outputs.size(); ++i) {
      std::string where = "inference request outputs[" + std::to_string(i) + "]";
      const json& o = outputs[i];
      if (!o.is_object()) fail(where, "an object", snippet(o));
      if (!o.contains("name") || !o.at("name").is_string()) {
        throw ProtocolError(where + ": missing field 'name'");
      }
      RequestedOutput requested{o.at("name").get<std::string>(), request.binary_data_output};
      json parameters = optional_parameters(o, where);
      if (parameters.contains("binary_data")) {
        requested.binary = bool_parameter(parameters, "binary_data", where);
      }
      request.outputs.push_back(std::move(requested));
    }
  }
  return request;
}

InferResponse decode_response(std::string_view body, std::optional<size_t> json_size) {
  const char* what = "inference response";
  BinaryCursor cursor;
  json header = parse_header(body, json_size, cursor, what);
  InferResponse response;
  response.model_name = optional_string(header, "model_name", what);
  response.model_version = optional_string(header, "model_version", what);
  response.id = optional_string(header, "id", what);
  response.parameters = optional_parameters(header, what);
  response.outputs = decode_tensors(header, "outputs", cursor, what, true);
  check_tail_used(cursor);
  return response;
}

size_t parse_header_content_length(const std::string& value) {
  if (value.empty() || value.size() > 18 ||
      value.find_first_not_of("0123456789") != std::string::npos) {
    fail(kHeaderContentLength, "a non-negative integer", "'" + value + "'");
  }
  return static_cast<size_t>(std::stoull(value));
}

std::vector<RequestedOutput> resolve_outputs(const InferRequest& request, const std::string& model,
                                             const std::vector<std::string>& known,
                                             const std::vector<std::string>& defaults) {
  if (request.outputs.empty()) {
    std::vector<RequestedOutput> all;
    for (const auto& name : defaults) all.push_back({name, request.binary_data_output});
    return all;
  }
  for (const auto& o : request.outputs) {
    if (std::find(known.begin(), known.end(), o.name) == known.end()) {
      throw ProtocolError("model '" + model + "' has no output '" + o.name + "'; it has " +
                          join_names(known));
    }
  }
  return request.outputs;
}

void add_outputs(InferResponse& response, const std::vector<RequestedOutput>& wanted,
                 std::vector<Tensor>& available) {
  for (const auto& w : wanted) {
    for (auto& t : available) {
      if (t.name != w.name) continue;
      t.binary = w.binary;
      response.outputs.push_back(std::move(t));
      break;
    }
  }
}

int64_t check_images_input(const InferRequest& request, const std::string& model, int64_t channels,
                           int64_t height, int64_t width) {
  std::vector<std::string> names;
  for (const auto& t : request.inputs) names.push_back(t.name);
  const Tensor* images = request.input("images");
  if (images == nullptr || request.inputs.size() != 1) {
    throw ProtocolError("model '" + model + "': expected one input 'images', got " +
                        join_names(names));
  }
  const auto& s = images->shape;
  const bool rank4 = s.size() == 4 && s[1] == channels && s[2] == height && s[3] == width;
  const bool rank3 = channels == 1 && s.size() == 3 && s[1] == height && s[2] == width;
  if (!(rank4 || rank3) || s[0] < 1) {
    std::string expected = "[N," + std::to_string(channels) + "," + std::to_string(height) + "," +
                           std::to_string(width) + "]";
    if (channels == 1) {
      expected += " or [N," + std::to_string(height) + "," + std::to_string(width) + "]";
    }
    throw ProtocolError("input 'images': expected shape " + expected + " with N >= 1, got " +
                        shape_string(s));
  }
  if (images->datatype != DataType::uint8 && images->datatype != DataType::fp32) {
    throw ProtocolError(std::string("input 'images': expected datatype FP32 or UINT8, got ") +
                        datatype_name(images->datatype));
  }
  return s[0];
}

std::vector<float> unit_floats(const Tensor& images) {
  if (images.datatype == DataType::uint8) {
    const auto& bytes = images.uint8s();
    std::vector<float> values(bytes.size());
    for (size_t i = 0; i < bytes.size(); ++i) values[i] = static_cast<float>(bytes[i]) / 255.0f;
    return values;
  }
  std::vector<float> values = images.floats();
  for (size_t i = 0; i < values.size(); ++i) {
    if (!(values[i] >= 0.0f && values[i] <= 1.0f)) {
      throw ProtocolError("input '" + images.name + "' element " + std::to_string(i) +
                          ": expected a value in [0, 1], got " + std::to_string(values[i]));
    }
  }
  return values;
}

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) out += (i ? ", '" : "'") + names[i] + "'";
  return out.empty() ? "none" : out;
}

std::string error_body(const std::string& message) {
  // The message may quote client bytes (a path, a BYTES element): never throw on them.
  return dump_json(json{{"error", message}});
}

}  // namespace edgefm::cloud
