#pragma once
// What one sample is, for every model and every part of the system: its modality, the
// tensor shape the models take (C x H x W, no batch dimension) and the preprocessing that
// turns raw input (an encoded image, a WAV recording, an IDX image) into that tensor.
//
// One representation travels everywhere: the *sample tensor*, C x H x W values in [0, 1],
// stored and sent as 8-bit (value * 255). Images: pixels scaled to [0, 1]. Audio: a log-mel
// spectrogram (1 x mel bands x frames), in dB relative to full scale mapped from
// [floor_db, 0] to [0, 1]. The per-channel mean/std normalization is applied by the models
// to that tensor (apply_normalization), so uploads and cloud queries stay 8-bit.
//
// Every FM and student artifact stores its spec; models with different specs refuse to
// meet (check_same_spec), and the cloud announces the spec in its model metadata.
#include <cstdint>
#include <string>
#include <vector>

#include "common/json_io.h"

namespace edgefm::data {

enum class Modality { image, audio };

struct TensorShape {
  int channels = 1;
  int height = 28;
  int width = 28;
  int64_t numel() const { return int64_t{channels} * height * width; }
  bool operator==(const TensorShape&) const = default;
};

// "3x224x224"
std::string to_string(const TensorShape& shape);
std::string to_string(Modality modality);

// Decoded image -> tensor (open_clip's PreprocessCfg, in short).
struct ImagePreprocess {
  // "shorter": scale so the shorter side fits, then centre-crop the longer one;
  // "longer": scale so the longer side fits, then centre-pad with `fill` (0..255);
  // "squash": scale each side to fit, aspect ratio not kept.
  std::string resize_mode = "shorter";
  int fill = 0;
  bool operator==(const ImagePreprocess&) const = default;
};

// WAV -> log-mel tensor. Frames: 1 + (window_samples - n_fft) / hop (no centre padding);
// the tensor's height is mel_bands and its width the frame count.
struct AudioPreprocess {
  int sample_rate = 16000;  // every recording is resampled to this rate, channels mixed down
  double window_s = 1.0;    // centre-cropped or zero-padded to this length
  int n_fft = 400;          // Hann window and FFT length, in samples
  int hop = 160;
  int mel_bands = 40;
  double fmin_hz = 20.0;
  double fmax_hz = 8000.0;
  double floor_db = -80.0;  // dB (power, relative to a full-scale sine) mapped to 0; 0 dB to 1
  int64_t window_samples() const;
  int frames() const;
  bool operator==(const AudioPreprocess&) const = default;
};

struct SampleSpec {
  Modality modality = Modality::image;
  TensorShape shape;
  ImagePreprocess image;  // used when modality == image
  AudioPreprocess audio;  // used when modality == audio; shape is {1, mel_bands, frames}
  // Per-channel normalization applied by the models: (x - mean[c]) / std[c]. Empty: none.
  std::vector<float> mean;
  std::vector<float> std;

  bool operator==(const SampleSpec&) const = default;
  // "image 1x28x28" / "audio 1x40x98 (16000 Hz, 1 s, 40 mel bands)"
  std::string describe() const;
};

// Fashion-MNIST's: grey 28x28 images, no normalization (what every model before specs took).
SampleSpec default_image_spec();
// An audio spec whose shape is derived from its preprocessing.
SampleSpec audio_spec(const AudioPreprocess& audio);

// Throws Error naming `context` and the field when the spec is inconsistent: non-positive
// sizes, more than 4096 per side, mean/std not one value per channel, std <= 0, audio
// shape that does not match its preprocessing, unknown resize mode.
void validate(const SampleSpec& spec, const std::string& context);

json to_json(const SampleSpec& spec);
// Fields that are absent take the defaults above; the result is validated.
SampleSpec spec_from_json(const json& value, const std::string& context);

// Throws Error("<context>: <what_a> expects <a.describe()>, <what_b> <b.describe()>") when
// the two differ.
void check_same_spec(const SampleSpec& a, const std::string& what_a, const SampleSpec& b,
                     const std::string& what_b);

// The one place that maps stored 8-bit samples to the models' [0, 1] floats.
void to_unit_floats(const uint8_t* samples, size_t count, float* out);
std::vector<float> to_unit_floats(const uint8_t* samples, size_t count);
// And back: [0, 1] floats (clamped) to 8 bits, rounded to nearest.
void to_bytes(const float* values, size_t count, uint8_t* out);

// (x - mean[c]) / std[c] in place over n samples of spec.shape; a no-op without mean/std.
void apply_normalization(const SampleSpec& spec, float* samples, int64_t n);

}  // namespace edgefm::data
