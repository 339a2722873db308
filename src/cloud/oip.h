#pragma once
// The Open Inference Protocol (KServe v2) codec shared by the cloud server and its client:
// inference requests and responses as JSON tensors, with Triton's binary_tensor_data
// extension (a JSON header of `Inference-Header-Content-Length` bytes followed by the raw
// tensor bytes, each tensor's size in `parameters.binary_data_size`).
//
// Decoding validates everything a peer can get wrong and throws ProtocolError (an
// edgefm::Error the server answers with 400); the messages are listed in docs/cloud.md.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/json_io.h"

namespace edgefm::cloud {

// A request or response that breaks the protocol (the server's 400).
class ProtocolError : public Error {
 public:
  using Error::Error;
};

enum class DataType { fp32, int64, int32, uint8, bytes };

// "FP32", "INT64", "INT32", "UINT8", "BYTES".
const char* datatype_name(DataType type);
// Throws ProtocolError "tensor '<name>': expected datatype one of FP32, INT64, INT32, UINT8,
// BYTES, got '<text>'".
DataType parse_datatype(const std::string& text, const std::string& tensor_name);
// Bytes per element; 0 for BYTES (variable length).
size_t datatype_size(DataType type);

// "[2,1,28,28]"
std::string shape_string(const std::vector<int64_t>& shape);
// Product of the dimensions; throws ProtocolError for a negative dimension.
int64_t shape_element_count(const std::vector<int64_t>& shape, const std::string& tensor_name);

// One named tensor. Numeric elements live in `raw` as little-endian bytes, row-major;
// BYTES elements live in `strings`. `binary` says how it travels (or travelled): as binary
// tensor data after the JSON header, or as a JSON "data" array.
struct Tensor {
  std::string name;
  DataType datatype = DataType::fp32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> raw;
  std::vector<std::string> strings;
  bool binary = false;

  int64_t element_count() const;
  // Bytes this tensor takes as binary tensor data (BYTES: 4-byte length + bytes each).
  size_t binary_size() const;

  // Copies of the elements; throw ProtocolError when the datatype differs.
  std::vector<float> floats() const;
  std::vector<int64_t> int64s() const;
  std::vector<int32_t> int32s() const;
  const std::vector<uint8_t>& uint8s() const;

  static Tensor from_floats(std::string name, std::vector<int64_t> shape,
                            const std::vector<float>& values);
  static Tensor from_floats(std::string name, std::vector<int64_t> shape, const float* values,
                            size_t count);
  static Tensor from_int64s(std::string name, std::vector<int64_t> shape,
                            const std::vector<int64_t>& values);
  static Tensor from_int32s(std::string name, std::vector<int64_t> shape,
                            const std::vector<int32_t>& values);
  static Tensor from_uint8s(std::string name, std::vector<int64_t> shape,
                            std::vector<uint8_t> values);
  static Tensor from_strings(std::string name, std::vector<int64_t> shape,
                             std::vector<std::string> values);
};

// An output the client asks for; `binary` is its `parameters.binary_data`.
struct RequestedOutput {
  std::string name;
  bool binary = false;
};

struct InferRequest {
  std::string id;
  std::vector<Tensor> inputs;
  // Empty: every output the model produces. binary_data_output (request-level parameter)
  // makes binary the default for outputs not listed with their own binary_data.
  std::vector<RequestedOutput> outputs;
  bool binary_data_output = false;
  json parameters = json::object();  // request parameters other than binary_data_output

  const Tensor* input(const std::string& name) const;
};

struct InferResponse {
  std::string model_name;
  std::string model_version;
  std::string id;
  json parameters = json::object();
  std::vector<Tensor> outputs;

  const Tensor* output(const std::string& name) const;
};

// An HTTP body in protocol form. `json_size` is set when binary tensor data follows the JSON
// header; it is the value of the Inference-Header-Content-Length header.
struct EncodedBody {
  std::string body;
  std::optional<size_t> json_size;
};

inline constexpr const char* kHeaderContentLength = "Inference-Header-Content-Length";

// Tensors with `binary` set travel as binary tensor data, the rest as JSON arrays.
EncodedBody encode_request(const InferRequest& request);
EncodedBody encode_response(const InferResponse& response);

// `json_size`: the Inference-Header-Content-Length header if present. Throws ProtocolError.
InferRequest decode_request(std::string_view body, std::optional<size_t> json_size);
InferResponse decode_response(std::string_view body, std::optional<size_t> json_size);

// Parses an Inference-Header-Content-Length value (throws ProtocolError when it is not a
// non-negative integer).
size_t parse_header_content_length(const std::string& value);

// What a model answers a request, for the servers of both sides:
// The outputs to send: those the request names (each must be one of `known`, else
// ProtocolError naming them), or `defaults` when it names none.
std::vector<RequestedOutput> resolve_outputs(const InferRequest& request, const std::string& model,
                                             const std::vector<std::string>& known,
                                             const std::vector<std::string>& defaults);
// Moves the `wanted` tensors of `available` into response.outputs, in the wanted order, each
// travelling as the request asked.
void add_outputs(InferResponse& response, const std::vector<RequestedOutput>& wanted,
                 std::vector<Tensor>& available);
// The request's only input must be `images`, UINT8 or FP32, shaped [N,C,H,W] (or [N,H,W]
// when C is 1) with N >= 1; returns N. Throws ProtocolError saying what was expected.
int64_t check_images_input(const InferRequest& request, const std::string& model, int64_t channels,
                           int64_t height, int64_t width);
// The elements of an `images` tensor as values in [0, 1]: UINT8 divided by 255, FP32 as they
// are (ProtocolError naming the first element outside [0, 1]).
std::vector<float> unit_floats(const Tensor& images);
// "'a', 'b'" ("none" for no names).
std::string join_names(const std::vector<std::string>& names);

// The error body of the protocol: {"error": "<message>"}.
std::string error_body(const std::string& message);

}  // namespace edgefm::cloud
