// The protocol codec: round trips of every datatype in JSON and binary form, and every
// validation error with its message.
#include <cstring>
#include <limits>

#include <gtest/gtest.h>

#include "cloud/oip.h"

namespace edgefm::cloud {
namespace {

std::string error_of(std::string_view body, std::optional<size_t> json_size = std::nullopt) {
  try {
    decode_request(body, json_size);
  } catch (const ProtocolError& e) {
    return e.what();
  }
  return "(no error)";
}

InferRequest round_trip(const InferRequest& request) {
  EncodedBody encoded = encode_request(request);
  return decode_request(encoded.body, encoded.json_size);
}

TEST(Oip, DatatypeNamesRoundTrip) {
  for (auto type : {DataType::fp32, DataType::int64, DataType::int32, DataType::uint8,
                    DataType::bytes}) {
    EXPECT_EQ(parse_datatype(datatype_name(type), "x"), type);
  }
  EXPECT_EQ(datatype_size(DataType::fp32), 4u);
  EXPECT_EQ(datatype_size(DataType::int64), 8u);
  EXPECT_EQ(datatype_size(DataType::uint8), 1u);
  EXPECT_EQ(datatype_size(DataType::bytes), 0u);
}

TEST(Oip, Fp32SurvivesJsonBitForBit) {
  std::vector<float> values = {0.1f, -0.0f, 1e-38f, 1.4e-45f, std::numeric_limits<float>::max(),
                               0.33333334f, 123456.789f, -2.5f};
  for (bool binary : {false, true}) {
    InferRequest request;
    request.inputs.push_back(Tensor::from_floats("x", {2, 4}, values));
    request.inputs.back().binary = binary;
    auto decoded = round_trip(request);
    ASSERT_EQ(decoded.inputs.size(), 1u);
    const Tensor& t = decoded.inputs[0];
    EXPECT_EQ(t.binary, binary);
    EXPECT_EQ(t.shape, (std::vector<int64_t>{2, 4}));
    auto out = t.floats();
    ASSERT_EQ(out.size(), values.size());
    EXPECT_EQ(std::memcmp(out.data(), values.data(), values.size() * sizeof(float)), 0)
        << "binary=" << binary;
  }
}

TEST(Oip, EveryDatatypeRoundTripsInBothForms) {
  for (bool binary : {false, true}) {
    InferRequest request;
    request.id = "r1";
    request.inputs.push_back(Tensor::from_int64s("a", {3}, {std::numeric_limits<int64_t>::min(), 0,
                                                            std::numeric_limits<int64_t>::max()}));
    request.inputs.push_back(Tensor::from_int32s("b", {2}, {-7, 2147483647}));
    request.inputs.push_back(Tensor::from_uint8s("c", {2, 2}, {0, 1, 254, 255}));
    request.inputs.push_back(Tensor::from_strings("d", {3}, {"", "coat", std::string("a\0b", 3)}));
    for (auto& t : request.inputs) t.binary = binary;
    auto decoded = round_trip(request);
    EXPECT_EQ(decoded.id, "r1");
    ASSERT_EQ(decoded.inputs.size(), 4u);
    EXPECT_EQ(decoded.input("a")->int64s(), request.inputs[0].int64s());
    EXPECT_EQ(decoded.input("b")->int32s(), request.inputs[1].int32s());
    EXPECT_EQ(decoded.input("c")->uint8s(), request.inputs[2].uint8s());
    EXPECT_EQ(decoded.input("c")->shape, (std::vector<int64_t>{2, 2}));
    EXPECT_EQ(decoded.input("d")->strings, request.inputs[3].strings);
  }
}

TEST(Oip, BinaryBodyIsJsonHeaderThenTensorsInOrder) {
  InferRequest request;
  request.inputs.push_back(Tensor::from_uint8s("first", {2}, {7, 8}));
  request.inputs.push_back(Tensor::from_strings("second", {1}, {"hi"}));
  for (auto& t : request.inputs) t.binary = true;
  EncodedBody encoded = encode_request(request);
  ASSERT_TRUE(encoded.json_size.has_value());
  auto header = json::parse(encoded.body.substr(0, *encoded.json_size));
  EXPECT_EQ(header["inputs"][0]["parameters"]["binary_data_size"], 2);
  EXPECT_EQ(header["inputs"][1]["parameters"]["binary_data_size"], 6);
  EXPECT_FALSE(header["inputs"][0].contains("data"));
  std::string tail = encoded.body.substr(*encoded.json_size);
  EXPECT_EQ(tail, std::string("\x07\x08\x02\x00\x00\x00hi", 8));
}

TEST(Oip, JsonOnlyBodyHasNoHeaderLength) {
  InferRequest request;
  request.inputs.push_back(Tensor::from_floats("x", {1}, {0.5f}));
  EncodedBody encoded = encode_request(request);
  EXPECT_FALSE(encoded.json_size.has_value());
  EXPECT_EQ(json::parse(encoded.body)["inputs"][0]["data"], json::array({0.5}));
}

TEST(Oip, NestedDataArraysAreFlattenedRowMajor) {
  auto request = decode_request(
      R"({"inputs":[{"name":"x","shape":[2,2],"datatype":"INT32","data":[[1,2],[3,4]]}]})",
      std::nullopt);
  EXPECT_EQ(request.inputs[0].int32s(), (std::vector<int32_t>{1, 2, 3, 4}));
}

TEST(Oip, RequestedOutputsAndBinaryDefault) {
  auto request = decode_request(
      R"({"inputs":[],"parameters":{"binary_data_output":true,"other":1},
          "outputs":[{"name":"a"},{"name":"b","parameters":{"binary_data":false}}]})",
      std::nullopt);
  EXPECT_TRUE(request.binary_data_output);
  ASSERT_EQ(request.outputs.size(), 2u);
  EXPECT_TRUE(request.outputs[0].binary);
  EXPECT_FALSE(request.outputs[1].binary);
  EXPECT_EQ(request.parameters, json({{"other", 1}}));
}

TEST(Oip, ResponseRoundTripMixesBinaryAndJsonOutputs) {
  InferResponse response;
  response.model_name = "fm";
  response.model_version = "1";
  response.parameters = {{"queue_time_us", 12}};
  response.outputs.push_back(Tensor::from_floats("embedding", {1, 2}, {0.6f, 0.8f}));
  response.outputs.back().binary = true;
  response.outputs.push_back(Tensor::from_strings("class_name", {1}, {"Coat"}));
  EncodedBody encoded = encode_response(response);
  ASSERT_TRUE(encoded.json_size.has_value());
  auto decoded = decode_response(encoded.body, encoded.json_size);
  EXPECT_EQ(decoded.model_name, "fm");
  EXPECT_EQ(decoded.parameters["queue_time_us"], 12);
  EXPECT_EQ(decoded.output("embedding")->floats(), (std::vector<float>{0.6f, 0.8f}));
  EXPECT_TRUE(decoded.output("embedding")->binary);
  EXPECT_EQ(decoded.output("class_name")->strings, std::vector<std::string>{"Coat"});
  EXPECT_FALSE(decoded.output("class_name")->binary);
}

TEST(Oip, MalformedJson) {
  EXPECT_EQ(error_of("{\"inputs\": [").rfind("malformed JSON in inference request: ", 0), 0u)
      << error_of("{\"inputs\": [");
  EXPECT_EQ(error_of("[1,2]"), "inference request: expected a JSON object, got array");
  EXPECT_EQ(error_of("{}"), "inference request: missing field 'inputs'");
}

TEST(Oip, UnknownDatatype) {
  EXPECT_EQ(error_of(R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP16","data":[1]}]})"),
            "tensor 'x': expected datatype one of FP32, INT64, INT32, UINT8, BYTES, got 'FP16'");
}

TEST(Oip, ShapeAndDataDisagree) {
  EXPECT_EQ(error_of(R"({"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[1,2,3]}]})"),
            "tensor 'x': expected 4 elements for shape [2,2], got 3 in 'data'");
  EXPECT_EQ(error_of(R"({"inputs":[{"name":"x","shape":[-1],"datatype":"FP32","data":[]}]})"),
            "tensor 'x' shape [-1]: expected non-negative dimensions, got -1");
  EXPECT_EQ(error_of(R"({"inputs":[{"name":"x","shape":[1048576,1048576,2],"datatype":"FP32",)"
                     R"("data":[]}]})"),
            "tensor 'x' shape [1048576,1048576,2]: expected at most 2^40 elements, got more");
}

TEST(Oip, ElementTypesAreChecked) {
  EXPECT_EQ(error_of(R"({"inputs":[{"name":"x","shape":[2],"datatype":"UINT8","data":[1,256]}]})"),
            "tensor 'x' element 1: expected an integer in [0, 255], got 256");
  EXPECT_EQ(error_of(R"({"inputs":[{"name":"x","shape":[1],"datatype":"INT32","data":[1.5]}]})"),
            "tensor 'x' element 0: expected an integer in [-2147483648, 2147483647], got 1.5");
  EXPECT_EQ(error_of(R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":["a"]}]})"),
            "tensor 'x' element 0: expected a number, got \"a\"");
  EXPECT_EQ(error_of(R"({"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","data":[3]}]})"),
            "tensor 'x' element 0: expected a string, got 3");
}

TEST(Oip, MissingAndDuplicateFields) {
  EXPECT_EQ(error_of(R"({"inputs":[{"name":"x","datatype":"FP32","data":[1]}]})"),
            "inference request inputs[0]: missing field 'shape'");
  EXPECT_EQ(error_of(R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32"}]})"),
            "inference request inputs[0]: missing field 'data'");
  EXPECT_EQ(error_of(R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]},
                                   {"name":"x","shape":[1],"datatype":"FP32","data":[1]}]})"),
            "inference request inputs: expected unique tensor names, got 'x' twice");
  EXPECT_EQ(error_of(R"({"inputs":[],"outputs":[{"name":"a","parameters":{"binary_data":1}}]})"),
            "inference request outputs[0] parameter 'binary_data': expected true or false, got 1");
}

std::string binary_body(const std::string& header, const std::string& tail) {
  return header + tail;
}

TEST(Oip, BinaryByteCountDisagreesWithShape) {
  std::string header =
      R"({"inputs":[{"name":"x","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":6}}]})";
  EXPECT_EQ(error_of(binary_body(header, std::string(6, '\0')), header.size()),
            "tensor 'x': expected binary_data_size 8 (shape [2] of FP32), got 6");
}

TEST(Oip, TruncatedBinaryBody) {
  std::string header =
      R"({"inputs":[{"name":"x","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}}]})";
  EXPECT_EQ(error_of(binary_body(header, std::string(5, '\0')), header.size()),
            "tensor 'x': expected 8 bytes of binary tensor data (parameters.binary_data_size), "
            "got a truncated body with 5 bytes left");
}

TEST(Oip, TrailingBytesAfterBinaryTensors) {
  std::string header =
      R"({"inputs":[{"name":"x","shape":[2],"datatype":"UINT8","parameters":{"binary_data_size":2}}]})";
  EXPECT_EQ(error_of(binary_body(header, std::string(3, '\1')), header.size()),
            "binary tensor data: expected 2 bytes after the JSON header (the sum of "
            "binary_data_size), got 3");
}

TEST(Oip, HeaderLengthBeyondBody) {
  EXPECT_EQ(error_of("{}", 10),
            "Inference-Header-Content-Length: expected at most the body size 2, got 10");
  EXPECT_THROW(parse_header_content_length("12a"), ProtocolError);
  EXPECT_THROW(parse_header_content_length("-1"), ProtocolError);
  EXPECT_EQ(parse_header_content_length("120"), 120u);
}

TEST(Oip, BinarySizeWithoutHeaderLength) {
  EXPECT_EQ(
      error_of(R"({"inputs":[{"name":"x","shape":[1],"datatype":"UINT8","parameters":{"binary_data_size":1}}]})"),
      "tensor 'x' (parameters.binary_data_size 1): expected binary tensor data announced by an "
      "Inference-Header-Content-Length header, got no such header");
}

TEST(Oip, BothDataAndBinarySize) {
  std::string header =
      R"({"inputs":[{"name":"x","shape":[1],"datatype":"UINT8","data":[1],"parameters":{"binary_data_size":1}}]})";
  EXPECT_EQ(error_of(header + "\1", header.size()),
            "tensor 'x': expected either 'data' or parameters.binary_data_size, got both");
}

TEST(Oip, MalformedBinaryStrings) {
  std::string header =
      R"({"inputs":[{"name":"s","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":6}}]})";
  // Length 5 announced, 2 bytes present.
  std::string tail("\x05\x00\x00\x00hi", 6);
  EXPECT_EQ(error_of(header + tail, header.size()),
            "tensor 's' element 0: expected 5 bytes, got 2 left in binary_data_size");
  std::string two = std::string("\x01\x00\x00\x00" "a" "\x01\x00\x00\x00" "b", 10);
  std::string header2 =
      R"({"inputs":[{"name":"s","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":10}}]})";
  EXPECT_EQ(error_of(header2 + two, header2.size()),
            "tensor 's': expected 1 BYTES elements for shape [1], got 2 in its binary data");
}

TEST(Oip, TensorBuildersCheckCounts) {
  EXPECT_THROW(Tensor::from_floats("x", {2, 2}, std::vector<float>{1, 2, 3}), ProtocolError);
  EXPECT_THROW(Tensor::from_strings("x", {2}, {"a"}), ProtocolError);
  EXPECT_THROW(Tensor::from_uint8s("x", {1}, {}), ProtocolError);
  auto t = Tensor::from_floats("x", {1}, std::vector<float>{1});
  EXPECT_THROW(t.int64s(), ProtocolError);
}

TEST(Oip, ErrorBody) { EXPECT_EQ(error_body("bad \"x\""), R"({"error":"bad \"x\""})"); }

}  // namespace
}  // namespace edgefm::cloud
