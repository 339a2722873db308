// Prometheus text of the service: the built-in writer's exact format, and the same series
// from prometheus-cpp when the build has it.
#include <gtest/gtest.h>

#include "cloud/metrics.h"
#include "common/error.h"

namespace edgefm::cloud {
namespace {

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

void observe_some(ServerMetrics& m) {
  m.count_request("fm", 200);
  m.count_request("fm", 200);
  m.count_request("fm", 400);
  m.count_request("text", 404);
  m.observe_request_seconds("fm", 0.0015);
  m.observe_request_seconds("fm", 0.3);
  m.observe_batch_rows("fm", 3);
  m.observe_queue_seconds("fm", 0.0004);
}

TEST(Metrics, BuiltinWriterFormat) {
  ServerMetrics m(MetricsBackend::builtin);
  EXPECT_EQ(m.backend(), MetricsBackend::builtin);
  observe_some(m);
  std::string text = m.text();
  EXPECT_TRUE(has_line(text, "# TYPE edgefm_inference_requests_total counter")) << text;
  EXPECT_TRUE(has_line(text, R"(edgefm_inference_requests_total{model="fm",code="200"} 2)")) << text;
  EXPECT_TRUE(has_line(text, R"(edgefm_inference_requests_total{model="fm",code="400"} 1)"));
  EXPECT_TRUE(has_line(text, R"(edgefm_inference_requests_total{model="text",code="404"} 1)"));
  EXPECT_TRUE(has_line(text, "# TYPE edgefm_inference_request_duration_seconds histogram"));
  // Buckets are cumulative: 0.0015 is in le=0.002 and above; 0.3 only from le=0.5.
  EXPECT_TRUE(has_line(text, R"(edgefm_inference_request_duration_seconds_bucket{model="fm",le="0.001"} 0)"));
  EXPECT_TRUE(has_line(text, R"(edgefm_inference_request_duration_seconds_bucket{model="fm",le="0.002"} 1)"));
  EXPECT_TRUE(has_line(text, R"(edgefm_inference_request_duration_seconds_bucket{model="fm",le="0.2"} 1)"));
  EXPECT_TRUE(has_line(text, R"(edgefm_inference_request_duration_seconds_bucket{model="fm",le="0.5"} 2)"));
  EXPECT_TRUE(has_line(text, R"(edgefm_inference_request_duration_seconds_bucket{model="fm",le="+Inf"} 2)"));
  EXPECT_TRUE(has_line(text, R"(edgefm_inference_request_duration_seconds_count{model="fm"} 2)"));
  EXPECT_TRUE(has_line(text, R"(edgefm_inference_request_duration_seconds_sum{model="fm"} 0.3015)"));
  EXPECT_TRUE(has_line(text, R"(edgefm_batch_size_bucket{model="fm",le="2"} 0)"));
  EXPECT_TRUE(has_line(text, R"(edgefm_batch_size_bucket{model="fm",le="4"} 1)"));
  EXPECT_TRUE(has_line(text, R"(edgefm_batch_queue_duration_seconds_bucket{model="fm",le="0.0005"} 1)"));
}

TEST(Metrics, BuiltinWriterEscapesLabelValues) {
  ServerMetrics m(MetricsBackend::builtin);
  m.count_request("a\"b\\c\nd", 200);
  EXPECT_TRUE(has_line(m.text(), R"(edgefm_inference_requests_total{model="a\"b\\c\nd",code="200"} 1)"))
      << m.text();
}

TEST(Metrics, BothBackendsServeTheSameSeries) {
  if (!ServerMetrics::has_prometheus_cpp()) {
    // Braces: clang reads ServerMetrics(MetricsBackend::prometheus_cpp) as a declaration.
    EXPECT_THROW(ServerMetrics{MetricsBackend::prometheus_cpp}, Error);
    GTEST_SKIP() << "built without prometheus-cpp";
  }
  ServerMetrics builtin(MetricsBackend::builtin), library(MetricsBackend::prometheus_cpp);
  EXPECT_EQ(ServerMetrics().backend(), MetricsBackend::prometheus_cpp);
  observe_some(builtin);
  observe_some(library);
  std::string text = library.text();
  for (const char* line :
       {R"(edgefm_inference_requests_total{code="200",model="fm"} 2)",
        R"(edgefm_inference_request_duration_seconds_count{model="fm"} 2)",
        R"(edgefm_batch_size_count{model="fm"} 1)",
        R"(edgefm_batch_queue_duration_seconds_count{model="fm"} 1)"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  }
  for (const char* name : {kMetricRequests, kMetricLatency, kMetricBatchSize, kMetricQueueTime}) {
    EXPECT_NE(builtin.text().find(std::string("# TYPE ") + name), std::string::npos);
    EXPECT_NE(text.find(std::string("# TYPE ") + name), std::string::npos);
  }
}

}  // namespace
}  // namespace edgefm::cloud
