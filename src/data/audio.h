#pragma once
// Recordings (WAV and the other formats libsndfile reads) to sample tensors: decode, mix
// down, resample, fixed-length window, log-mel spectrogram. Decoding uses Debian's
// libsndfile, the FFT FFTW, resampling libsamplerate.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "data/sample_spec.h"

namespace edgefm::data {

struct Waveform {
  int sample_rate = 0;
  int channels = 0;
  std::vector<float> samples;  // frames * channels, interleaved, in [-1, 1]
  int64_t frames() const { return channels ? static_cast<int64_t>(samples.size()) / channels : 0; }
};

// Longest recording the decoder accepts; longer ones are refused from the header.
constexpr double kMaxRecordingSeconds = 600.0;
// Most samples (frames x channels) the decoder accepts, also checked from the header: 1 GiB of
// floats (600 s of 48 kHz stereo is 57.6 M). Bounds memory for many channels at high rates.
constexpr int64_t kMaxDecodedSamples = int64_t{1} << 28;

// Throws Error naming `name` and what was wrong: not a sound file, corrupt or truncated,
// unsupported encoding or bit depth, no frames, absurd rate or channel count.
Waveform decode_audio(const uint8_t* bytes, size_t size, const std::string& name);
Waveform read_audio_file(const std::filesystem::path& path);

// Writes 16-bit PCM WAV (tests).
void write_wav(const std::filesystem::path& path, const Waveform& wave);

// The steps, each usable alone (tests check each against hand-computed values).
std::vector<float> mix_down(const Waveform& wave);
std::vector<float> resample(const std::vector<float>& mono, int from_rate, int to_rate);
// Centre-crops or zero-pads (centred) to exactly `length` samples.
std::vector<float> fixed_window(const std::vector<float>& mono, int64_t length);

// Log-mel spectrogram of one window (AudioPreprocess::window_samples() samples at its rate):
// Hann window, |FFT|^2 scaled so a full-scale sine reads 0 dB in its band, HTK mel
// triangles between fmin_hz and fmax_hz, 10 log10, mapped from [floor_db, 0] to [0, 1].
// Output: mel_bands x frames floats, band 0 (lowest) first, row-major. The FFT plan is made
// once; compute() may be called from several threads at once.
class LogMel {
 public:
  explicit LogMel(const AudioPreprocess& params);
  ~LogMel();
  LogMel(const LogMel&) = delete;
  LogMel& operator=(const LogMel&) = delete;
  void compute(const float* window, float* out) const;
  const AudioPreprocess& params() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The whole audio preprocessing of `spec` (modality audio): mix down, resample, window,
// log-mel; returns the stored sample tensor (1 x mel_bands x frames bytes).
std::vector<uint8_t> preprocess_audio(const Waveform& wave, const SampleSpec& spec);

}  // namespace edgefm::data
