#include "data/sample_spec.h"

#include <algorithm>
#include <cmath>

namespace edgefm::data {

namespace {

constexpr int kMaxSide = 4096;

std::string number_text(double x) {
  std::string s = std::to_string(x);
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

template <typename T>
T optional_field(const json& object, const char* name, T fallback, const std::string& context) {
  if (!object.contains(name)) return fallback;
  return json_field<T>(object, name, context);
}

}  // namespace

std::string to_string(const TensorShape& shape) {
  return std::to_string(shape.channels) + "x" + std::to_string(shape.height) + "x" +
         std::to_string(shape.width);
}

std::string to_string(Modality modality) {
  return modality == Modality::audio ? "audio" : "image";
}

int64_t AudioPreprocess::window_samples() const {
  return std::llround(window_s * sample_rate);
}

int AudioPreprocess::frames() const {
  const int64_t samples = window_samples();
  if (samples < n_fft || hop <= 0) return 0;
  return static_cast<int>(1 + (samples - n_fft) / hop);
}

std::string SampleSpec::describe() const {
  std::string text = to_string(modality) + " " + to_string(shape);
  if (modality == Modality::audio) {
    text += " (" + std::to_string(audio.sample_rate) + " Hz, " + number_text(audio.window_s) +
            " s, " + std::to_string(audio.mel_bands) + " mel bands)";
  }
  if (!mean.empty()) {
    text += " normalized";
  }
  return text;
}

SampleSpec default_image_spec() { return SampleSpec{}; }

SampleSpec audio_spec(const AudioPreprocess& audio) {
  SampleSpec spec;
  spec.modality = Modality::audio;
  spec.audio = audio;
  spec.shape = {1, audio.mel_bands, audio.frames()};
  return spec;
}

void validate(const SampleSpec& spec, const std::string& context) {
  const auto side = [&](int value, const char* name) {
    if (value < 1 || value > kMaxSide) {
      fail_expected(context, std::string("sample ") + name + " in [1, " +
                                 std::to_string(kMaxSide) + "]",
                    std::to_string(value));
    }
  };
  side(spec.shape.channels, "channels");
  side(spec.shape.height, "height");
  side(spec.shape.width, "width");
  if (spec.shape.channels > 4) {
    fail_expected(context, "1 to 4 channels", std::to_string(spec.shape.channels));
  }
  if (!spec.mean.empty() || !spec.std.empty()) {
    const size_t c = static_cast<size_t>(spec.shape.channels);
    if (spec.mean.size() != c || spec.std.size() != c) {
      fail_expected(context, "mean and std with one value per channel (" + std::to_string(c) + ")",
                    std::to_string(spec.mean.size()) + " mean and " +
                        std::to_string(spec.std.size()) + " std values");
    }
    for (size_t i = 0; i < c; ++i) {
      if (!std::isfinite(spec.mean[i]) || !std::isfinite(spec.std[i]) || !(spec.std[i] > 0)) {
        fail_expected(context, "finite mean and std > 0",
                      "mean " + number_text(spec.mean[i]) + ", std " + number_text(spec.std[i]));
      }
    }
  }
  if (spec.modality == Modality::image) {
    const auto& m = spec.image.resize_mode;
    if (m != "shorter" && m != "longer" && m != "squash") {
      fail_expected(context, "image resize_mode 'shorter', 'longer' or 'squash'", "'" + m + "'");
    }
    if (spec.image.fill < 0 || spec.image.fill > 255) {
      fail_expected(context, "image fill in [0, 255]", std::to_string(spec.image.fill));
    }
    return;
  }
  const AudioPreprocess& a = spec.audio;
  if (a.sample_rate < 1000 || a.sample_rate > 192000) {
    fail_expected(context, "audio sample_rate in [1000, 192000]", std::to_string(a.sample_rate));
  }
  if (!(a.window_s > 0 && a.window_s <= 60)) {
    fail_expected(context, "audio window_s in (0, 60]", number_text(a.window_s));
  }
  if (a.n_fft < 16 || a.n_fft > 65536 || a.n_fft > a.window_samples()) {
    fail_expected(context, "audio n_fft in [16, 65536] and at most the window's samples",
                  std::to_string(a.n_fft));
  }
  if (a.hop < 1 || a.hop > a.n_fft) {
    fail_expected(context, "audio hop in [1, n_fft]", std::to_string(a.hop));
  }
  if (a.mel_bands < 1 || a.mel_bands > a.n_fft / 2 + 1) {
    fail_expected(context, "audio mel_bands in [1, n_fft / 2 + 1]", std::to_string(a.mel_bands));
  }
  if (!(a.fmin_hz >= 0 && a.fmin_hz < a.fmax_hz && a.fmax_hz <= a.sample_rate / 2.0)) {
    fail_expected(context, "audio 0 <= fmin_hz < fmax_hz <= sample_rate / 2",
                  number_text(a.fmin_hz) + " and " + number_text(a.fmax_hz));
  }
  if (!(a.floor_db < 0 && a.floor_db >= -200)) {
    fail_expected(context, "audio floor_db in [-200, 0)", number_text(a.floor_db));
  }
  const TensorShape expected{1, a.mel_bands, a.frames()};
  if (spec.shape != expected) {
    fail_expected(context, "audio shape " + to_string(expected) + " (1 x mel_bands x frames)",
                  to_string(spec.shape));
  }
}

json to_json(const SampleSpec& spec) {
  json j = {{"modality", to_string(spec.modality)},
            {"shape", {spec.shape.channels, spec.shape.height, spec.shape.width}},
            {"datatype", "UINT8"}};
  if (!spec.mean.empty()) {
    j["mean"] = spec.mean;
    j["std"] = spec.std;
  }
  if (spec.modality == Modality::image) {
    j["image"] = {{"resize_mode", spec.image.resize_mode}, {"fill", spec.image.fill}};
  } else {
    const AudioPreprocess& a = spec.audio;
    j["audio"] = {{"sample_rate", a.sample_rate}, {"window_s", a.window_s}, {"n_fft", a.n_fft},
                  {"hop", a.hop},                 {"mel_bands", a.mel_bands},
                  {"fmin_hz", a.fmin_hz},         {"fmax_hz", a.fmax_hz},
                  {"floor_db", a.floor_db}};
  }
  return j;
}

SampleSpec spec_from_json(const json& value, const std::string& context) {
  if (!value.is_object()) fail_expected(context, "a sample spec object", value.type_name());
  SampleSpec spec;
  const auto modality = optional_field<std::string>(value, "modality", "image", context);
  if (modality == "audio") {
    spec.modality = Modality::audio;
  } else if (modality != "image") {
    fail_expected(context, "modality 'image' or 'audio'", "'" + modality + "'");
  }
  if (value.contains("datatype") && value.at("datatype") != "UINT8") {
    fail_expected(context, "datatype 'UINT8'", value.at("datatype").dump());
  }
  if (spec.modality == Modality::audio) {
    const json a = value.value("audio", json::object());
    const std::string ctx = context + ": audio";
    if (!a.is_object()) fail_expected(ctx, "an object", a.type_name());
    AudioPreprocess& p = spec.audio;
    p.sample_rate = optional_field(a, "sample_rate", p.sample_rate, ctx);
    p.window_s = optional_field(a, "window_s", p.window_s, ctx);
    p.n_fft = optional_field(a, "n_fft", p.n_fft, ctx);
    p.hop = optional_field(a, "hop", p.hop, ctx);
    p.mel_bands = optional_field(a, "mel_bands", p.mel_bands, ctx);
    p.fmin_hz = optional_field(a, "fmin_hz", p.fmin_hz, ctx);
    p.fmax_hz = optional_field(a, "fmax_hz", std::min(p.fmax_hz, p.sample_rate / 2.0), ctx);
    p.floor_db = optional_field(a, "floor_db", p.floor_db, ctx);
    spec.shape = {1, p.mel_bands, p.frames()};
  } else {
    const json i = value.value("image", json::object());
    if (!i.is_object()) fail_expected(context + ": image", "an object", i.type_name());
    spec.image.resize_mode =
        optional_field<std::string>(i, "resize_mode", spec.image.resize_mode, context + ": image");
    spec.image.fill = optional_field(i, "fill", spec.image.fill, context + ": image");
  }
  if (value.contains("shape")) {
    const auto dims = json_field<std::vector<int>>(value, "shape", context);
    if (dims.size() != 3) {
      fail_expected(context, "shape [C, H, W]", std::to_string(dims.size()) + " dimensions");
    }
    spec.shape = {dims[0], dims[1], dims[2]};
  } else if (spec.modality == Modality::image) {
    throw Error(context + ": missing field 'shape' ([C, H, W], e.g. [3, 32, 32])");
  }
  spec.mean = optional_field(value, "mean", std::vector<float>{}, context);
  spec.std = optional_field(value, "std", std::vector<float>{}, context);
  validate(spec, context);
  return spec;
}

void check_same_spec(const SampleSpec& a, const std::string& what_a, const SampleSpec& b,
                     const std::string& what_b) {
  if (a == b) return;
  throw Error(what_a + " takes samples of " + a.describe() + ", but " + what_b + " takes " +
              b.describe() + " (" + to_json(a).dump() + " vs " + to_json(b).dump() + ")");
}

void to_unit_floats(const uint8_t* samples, size_t count, float* out) {
  // A division, not a multiplication by 1/255: exactly the value x / 255.0f everywhere.
  for (size_t i = 0; i < count; ++i) out[i] = static_cast<float>(samples[i]) / 255.0f;
}

std::vector<float> to_unit_floats(const uint8_t* samples, size_t count) {
  std::vector<float> out(count);
  to_unit_floats(samples, count, out.data());
  return out;
}

void to_bytes(const float* values, size_t count, uint8_t* out) {
  for (size_t i = 0; i < count; ++i) {
    const float v = std::clamp(values[i], 0.0f, 1.0f);  // NaN: clamp keeps it; handled below
    // Round half away from zero, as lround, without its cost (v >= 0; the sum is exact in
    // double): the audio front end converts ~4000 values a clip.
    out[i] = v == v ? static_cast<uint8_t>(static_cast<double>(v * 255.0f) + 0.5) : 0;
  }
}

void apply_normalization(const SampleSpec& spec, float* samples, int64_t n) {
  if (spec.mean.empty()) return;
  const int64_t plane = int64_t{spec.shape.height} * spec.shape.width;
  for (int64_t s = 0; s < n; ++s) {
    for (int c = 0; c < spec.shape.channels; ++c) {
      float* p = samples + (s * spec.shape.channels + c) * plane;
      const float mean = spec.mean[static_cast<size_t>(c)];
      const float inv = 1.0f / spec.std[static_cast<size_t>(c)];
      for (int64_t i = 0; i < plane; ++i) p[i] = (p[i] - mean) * inv;
    }
  }
}

}  // namespace edgefm::data
