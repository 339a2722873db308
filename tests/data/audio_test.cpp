#include <gtest/gtest.h>
#include <sndfile.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "support/error_of.h"
#include "common/error.h"
#include "data/audio.h"
#include "support/temp_dir.h"

namespace fs = std::filesystem;
using namespace edgefm;
using namespace edgefm::data;

namespace {

std::vector<float> tone(int rate, double seconds, double hz, double amplitude) {
  std::vector<float> out(static_cast<size_t>(std::llround(rate * seconds)));
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<float>(amplitude * std::sin(2 * M_PI * hz * static_cast<double>(i) / rate));
  }
  return out;
}

Waveform mono(int rate, std::vector<float> samples) { return Waveform{rate, 1, std::move(samples)}; }

// Writes with libsndfile directly, in any WAV encoding (write_wav only does 16-bit PCM).
void write_encoded(const fs::path& path, const Waveform& wave, int subtype) {
  SF_INFO info{};
  info.samplerate = wave.sample_rate;
  info.channels = wave.channels;
  info.format = SF_FORMAT_WAV | subtype;
  SNDFILE* file = sf_open(path.c_str(), SFM_WRITE, &info);
  ASSERT_NE(file, nullptr) << sf_strerror(nullptr);
  ASSERT_EQ(sf_writef_float(file, wave.samples.data(), wave.frames()), wave.frames());
  sf_close(file);
}

std::string raw(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_raw(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out << bytes;
}

void put_le32(std::string& bytes, size_t at, uint32_t value) {
  for (int i = 0; i < 4; ++i) bytes[at + static_cast<size_t>(i)] = static_cast<char>((value >> (8 * i)) & 0xff);
}

void put_le16(std::string& bytes, size_t at, uint16_t value) {
  bytes[at] = static_cast<char>(value & 0xff);
  bytes[at + 1] = static_cast<char>(value >> 8);
}

using edgefm::testing::error_of;

int zero_crossings(const std::vector<float>& x, size_t from, size_t to) {
  int n = 0;
  for (size_t i = from + 1; i < to; ++i) n += (x[i - 1] < 0) != (x[i] < 0);
  return n;
}

double hz_to_mel(double hz) { return 2595.0 * std::log10(1.0 + hz / 700.0); }
double mel_to_hz(double mel) { return 700.0 * (std::pow(10.0, mel / 2595.0) - 1.0); }

// The band whose HTK centre frequency is nearest `hz`.
int nearest_band(const AudioPreprocess& p, double hz) {
  const double lo = hz_to_mel(p.fmin_hz), hi = hz_to_mel(p.fmax_hz);
  int best = 0;
  double best_distance = 1e18;
  for (int m = 0; m < p.mel_bands; ++m) {
    const double centre = mel_to_hz(lo + (hi - lo) * (m + 1) / (p.mel_bands + 1));
    if (std::abs(centre - hz) < best_distance) {
      best_distance = std::abs(centre - hz);
      best = m;
    }
  }
  return best;
}

class AudioTest : public ::testing::Test {
 protected:
  edgefm::testing::TempDir dir_{"audio", ::testing::UnitTest::GetInstance()->current_test_info()->name()};
  fs::path path(const std::string& name) const { return dir_.path / name; }
};

TEST_F(AudioTest, RoundTripRatesAndBitDepths) {
  struct Encoding {
    int subtype;  // 0: write_wav (16-bit PCM)
    const char* name;
    double tolerance;
  };
  // libsndfile writes x * (2^(b-1) - 1) rounded and reads n / 2^(b-1): rounding plus the
  // scale difference, at most 1.5 steps.
  const Encoding encodings[] = {{0, "pcm16", 1.5 / 32768},
                                {SF_FORMAT_PCM_24, "pcm24", 1.5 / 8388608},
                                {SF_FORMAT_FLOAT, "float", 0.0},
                                {SF_FORMAT_PCM_U8, "u8", 1.5 / 128}};
  for (int rate : {8000, 16000, 44100, 48000}) {
    // Stereo, the channels different: a 440 Hz tone and its half, negated.
    const auto left = tone(rate, 0.25, 440, 0.8);
    Waveform wave{rate, 2, {}};
    for (float s : left) {
      wave.samples.push_back(s);
      wave.samples.push_back(-0.5f * s);
    }
    for (const auto& e : encodings) {
      const auto file = path(std::to_string(rate) + "-" + e.name + ".wav");
      if (e.subtype == 0) {
        write_wav(file, wave);
      } else {
        write_encoded(file, wave, e.subtype);
      }
      const auto back = read_audio_file(file);
      SCOPED_TRACE(file.string());
      EXPECT_EQ(back.sample_rate, rate);
      EXPECT_EQ(back.channels, 2);
      ASSERT_EQ(back.frames(), wave.frames());
      double worst = 0;
      for (size_t i = 0; i < wave.samples.size(); ++i) {
        worst = std::max(worst, std::abs(double{back.samples[i]} - wave.samples[i]));
      }
      EXPECT_LE(worst, e.tolerance);
    }
  }
}

TEST_F(AudioTest, WriteWavIsSixteenBitPcm) {
  write_wav(path("a.wav"), mono(16000, {0.5f, -0.25f, 1.0f, 2.0f}));
  SF_INFO info{};
  SNDFILE* file = sf_open(path("a.wav").c_str(), SFM_READ, &info);
  ASSERT_NE(file, nullptr);
  EXPECT_EQ(info.format, SF_FORMAT_WAV | SF_FORMAT_PCM_16);
  short values[4];
  ASSERT_EQ(sf_readf_short(file, values, 4), 4);
  sf_close(file);
  EXPECT_EQ(values[0], 16384);  // 0.5 * 32767 rounded to even
  EXPECT_EQ(values[1], -8192);
  EXPECT_EQ(values[2], 32767);
  EXPECT_EQ(values[3], 32767);  // clipped, not wrapped
  EXPECT_NE(error_of([&] { write_wav(path("b.wav"), Waveform{16000, 2, {0.1f, 0.2f, 0.3f}}); })
                .find("whole number of frames"),
            std::string::npos);
}

TEST_F(AudioTest, StereoMixDownHandComputed) {
  const Waveform stereo{8000, 2, {0.5f, -0.25f, 1.0f, 0.0f, -1.0f, -1.0f}};
  EXPECT_EQ(mix_down(stereo), (std::vector<float>{0.125f, 0.5f, -1.0f}));
  const Waveform three{8000, 3, {0.3f, 0.6f, 0.9f, -0.3f, 0.0f, 0.0f}};
  const auto m = mix_down(three);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_NEAR(m[0], 0.6f, 1e-6);
  EXPECT_NEAR(m[1], -0.1f, 1e-6);
  EXPECT_EQ(mix_down(mono(8000, {0.25f, -0.5f})), (std::vector<float>{0.25f, -0.5f}));
  // Through a 16-bit file (libsndfile scales by 32767 writing, 32768 reading).
  write_wav(path("s.wav"), stereo);
  const auto from_file = mix_down(read_audio_file(path("s.wav")));
  ASSERT_EQ(from_file.size(), 3u);
  EXPECT_NEAR(from_file[0], 0.125f, 1e-4);
  EXPECT_NEAR(from_file[1], 0.5f, 1e-4);
  EXPECT_NEAR(from_file[2], -1.0f, 1e-4);
}

TEST_F(AudioTest, ResampleLengthFrequencyAndAlignment) {
  struct Case {
    int from, to;
  };
  for (auto [from, to] : {Case{44100, 16000}, Case{48000, 16000}, Case{8000, 16000}, Case{16000, 8000},
                          Case{384000, 1000}}) {
    SCOPED_TRACE(std::to_string(from) + " -> " + std::to_string(to));
    const double hz = 300;
    const auto in = tone(from, 1.0, hz, 0.5);
    const auto out = resample(in, from, to);
    ASSERT_EQ(out.size(), static_cast<size_t>(to));
    // 300 Hz: 600 zero crossings a second; away from the edges, 0.8 s -> 480.
    const size_t a = static_cast<size_t>(to / 10), b = static_cast<size_t>(to * 9 / 10);
    EXPECT_NEAR(zero_crossings(out, a, b), 480, 2);
    // Same amplitude and no delay: matches the tone computed at the new rate.
    const auto expected = tone(to, 1.0, hz, 0.5);
    double worst = 0;
    for (size_t i = a; i < b; ++i) worst = std::max(worst, std::abs(double{out[i]} - expected[i]));
    EXPECT_LT(worst, 0.01);
    EXPECT_EQ(resample(in, from, to), out);  // deterministic
  }
  EXPECT_EQ(resample(std::vector<float>(441, 0.1f), 44100, 16000).size(), 160u);
  const std::vector<float> x{0.1f, -0.2f, 0.3f};
  EXPECT_EQ(resample(x, 16000, 16000), x);
  EXPECT_TRUE(resample({}, 8000, 16000).empty());
}

TEST_F(AudioTest, FixedWindowCropsAndPadsCentred) {
  const std::vector<float> x{1, 2, 3, 4, 5};
  EXPECT_EQ(fixed_window(x, 3), (std::vector<float>{2, 3, 4}));
  EXPECT_EQ(fixed_window(x, 4), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(fixed_window(x, 5), x);
  EXPECT_EQ(fixed_window(x, 8), (std::vector<float>{0, 1, 2, 3, 4, 5, 0, 0}));
  EXPECT_EQ(fixed_window(x, 9), (std::vector<float>{0, 0, 1, 2, 3, 4, 5, 0, 0}));
  EXPECT_TRUE(fixed_window(x, 0).empty());
  EXPECT_EQ(fixed_window({}, 2), (std::vector<float>{0, 0}));
}

TEST_F(AudioTest, ToneLandsInItsMelBandAtTheRightLevel) {
  const AudioPreprocess p;  // 16 kHz, n_fft 400, hop 160, 40 bands, 20..8000 Hz, floor -80
  ASSERT_EQ(p.frames(), 98);
  const LogMel log_mel(p);
  std::vector<float> out(static_cast<size_t>(p.mel_bands * p.frames()));
  struct Case {
    double hz, amplitude, low, high;  // expected peak value range
  };
  // 440 Hz, 1 kHz and 3 kHz are bin centres (40 Hz bins). Full scale: 0 dB total power; the
  // band reads up to a few dB less (its triangle weighs the tone's bins below 1 unless the
  // tone sits at the band's centre). Amplitude 0.1: -20 dB -> (80 - 20) / 80 = 0.75, a
  // little less; amplitude 0.5: -6 dB -> 0.925, less.
  for (auto c : {Case{1000, 1.0, 0.97, 1.0}, Case{3000, 0.1, 0.72, 0.75}, Case{440, 0.5, 0.86, 0.92}}) {
    SCOPED_TRACE(c.hz);
    log_mel.compute(tone(p.sample_rate, 1.0, c.hz, c.amplitude).data(), out.data());
    const int band = nearest_band(p, c.hz);
    for (int t = 0; t < p.frames(); ++t) {
      int best = 0;
      for (int m = 1; m < p.mel_bands; ++m) {
        if (out[static_cast<size_t>(m * p.frames() + t)] > out[static_cast<size_t>(best * p.frames() + t)]) best = m;
      }
      ASSERT_EQ(best, band) << "frame " << t;
      const float peak = out[static_cast<size_t>(band * p.frames() + t)];
      ASSERT_GE(peak, c.low) << "frame " << t;
      ASSERT_LE(peak, c.high) << "frame " << t;
    }
    // Far from the tone, the Hann leakage is far below the floor.
    EXPECT_EQ(out[static_cast<size_t>((band < 20 ? 39 : 0) * p.frames())], 0.0f);
  }
}

TEST_F(AudioTest, SilenceIsZero) {
  const AudioPreprocess p;
  const LogMel log_mel(p);
  std::vector<float> out(static_cast<size_t>(p.mel_bands * p.frames()), 0.5f);
  log_mel.compute(std::vector<float>(static_cast<size_t>(p.window_samples()), 0.0f).data(), out.data());
  EXPECT_TRUE(std::all_of(out.begin(), out.end(), [](float v) { return v == 0.0f; }));
  const auto bytes = preprocess_audio(mono(8000, std::vector<float>(4000, 0.0f)), audio_spec(p));
  ASSERT_EQ(bytes.size(), 40u * 98u);
  EXPECT_TRUE(std::all_of(bytes.begin(), bytes.end(), [](uint8_t v) { return v == 0; }));
}

TEST_F(AudioTest, PreprocessWholeChain) {
  // 2 s of stereo at 44.1 kHz: a 1 kHz tone on the left, silence on the right; mixing halves
  // the amplitude (-6 dB): (80 - 6) / 80 * 255 ~ 236, a little less in the band.
  const auto left = tone(44100, 2.0, 1000, 1.0);
  Waveform wave{44100, 2, {}};
  for (float s : left) {
    wave.samples.push_back(s);
    wave.samples.push_back(0.0f);
  }
  const AudioPreprocess p;
  const auto spec = audio_spec(p);
  const auto bytes = preprocess_audio(wave, spec);
  ASSERT_EQ(static_cast<int64_t>(bytes.size()), spec.shape.numel());
  const int band = nearest_band(p, 1000);
  for (int t = 0; t < p.frames(); ++t) {
    const auto row = [&](int m) { return bytes[static_cast<size_t>(m * p.frames() + t)]; };
    ASSERT_GE(row(band), 228) << t;
    ASSERT_LE(row(band), 237) << t;
    for (int m = 0; m < p.mel_bands; ++m) ASSERT_LE(row(m), row(band));
  }
  EXPECT_EQ(preprocess_audio(wave, spec), bytes);  // cached LogMel, same result
  // A different spec gets its own log-mel: 20 bands.
  AudioPreprocess q = p;
  q.mel_bands = 20;
  EXPECT_EQ(preprocess_audio(wave, audio_spec(q)).size(), 20u * 98u);
  EXPECT_NE(error_of([&] { preprocess_audio(wave, default_image_spec()); }).find("modality audio"),
            std::string::npos);
}

TEST_F(AudioTest, ComputeFromSeveralThreadsAgrees) {
  const AudioPreprocess p;
  const LogMel log_mel(p);
  const auto x = tone(p.sample_rate, 1.0, 700, 0.3);
  std::vector<float> reference(static_cast<size_t>(p.mel_bands * p.frames()));
  log_mel.compute(x.data(), reference.data());
  std::vector<std::vector<float>> outs(4, std::vector<float>(reference.size()));
  std::vector<std::thread> threads;
  for (auto& o : outs) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) log_mel.compute(x.data(), o.data());
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& o : outs) EXPECT_EQ(o, reference);
}

TEST_F(AudioTest, BadLogMelParametersRefused) {
  AudioPreprocess p;
  p.fmax_hz = 9000;  // above Nyquist
  EXPECT_NE(error_of([&] { LogMel bad(p); }).find("fmax_hz"), std::string::npos);
}

TEST_F(AudioTest, CorruptEmptyAndTextFilesNameTheFile) {
  const auto random = path("noise.wav");
  std::string junk(3000, '\0');
  uint32_t state = 12345;
  for (char& c : junk) c = static_cast<char>((state = state * 1664525u + 1013904223u) >> 24);
  write_raw(random, junk);
  auto message = error_of([&] { read_audio_file(random); });
  EXPECT_NE(message.find(random.string()), std::string::npos) << message;
  EXPECT_NE(message.find("sound file"), std::string::npos) << message;

  write_raw(path("empty.wav"), "");
  message = error_of([&] { read_audio_file(path("empty.wav")); });
  EXPECT_NE(message.find(path("empty.wav").string()), std::string::npos) << message;
  EXPECT_NE(message.find("empty"), std::string::npos) << message;

  write_raw(path("notes.wav"), "These are my notes, not a recording.\n");
  message = error_of([&] { read_audio_file(path("notes.wav")); });
  EXPECT_NE(message.find(path("notes.wav").string()), std::string::npos) << message;
  EXPECT_NE(message.find("not recognised"), std::string::npos) << message;

  message = error_of([&] { read_audio_file(path("absent.wav")); });
  EXPECT_NE(message.find("cannot open"), std::string::npos) << message;
  EXPECT_NE(message.find(path("absent.wav").string()), std::string::npos) << message;

  // decode_audio names what it is given.
  EXPECT_NE(error_of([&] { decode_audio(reinterpret_cast<const uint8_t*>(junk.data()), junk.size(), "request"); })
                .find("audio 'request'"),
            std::string::npos);
}

TEST_F(AudioTest, TruncatedFilesRefused) {
  write_wav(path("full.wav"), mono(8000, tone(8000, 1.0, 440, 0.5)));
  const auto bytes = raw(path("full.wav"));
  ASSERT_EQ(bytes.size(), 44u + 16000u);
  for (size_t keep : {bytes.size() / 2, bytes.size() - 1, size_t{44}}) {
    write_raw(path("cut.wav"), bytes.substr(0, keep));
    const auto message = error_of([&] { read_audio_file(path("cut.wav")); });
    SCOPED_TRACE(keep);
    EXPECT_NE(message.find(path("cut.wav").string()), std::string::npos) << message;
    EXPECT_NE(message.find("truncated"), std::string::npos) << message;
    EXPECT_NE(message.find("8000 frames"), std::string::npos) << message;
  }
  // AIFF (the frame count in its COMM chunk) and FLAC (the stream's: the decoder runs out).
  const Waveform wave = mono(8000, tone(8000, 1.0, 440, 0.5));
  for (auto [name, format] : {std::pair{"full.aiff", SF_FORMAT_AIFF | SF_FORMAT_PCM_16},
                              std::pair{"full.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16}}) {
    SCOPED_TRACE(name);
    SF_INFO info{};
    info.samplerate = 8000;
    info.channels = 1;
    info.format = format;
    SNDFILE* file = sf_open(path(name).c_str(), SFM_WRITE, &info);
    ASSERT_NE(file, nullptr) << sf_strerror(nullptr);
    sf_writef_float(file, wave.samples.data(), wave.frames());
    sf_close(file);
    EXPECT_EQ(read_audio_file(path(name)).frames(), 8000);
    const auto full = raw(path(name));
    const auto cut = path(std::string("cut-") + name);
    write_raw(cut, full.substr(0, full.size() / 2));
    const auto message = error_of([&] { read_audio_file(cut); });
    EXPECT_NE(message.find(cut.string()), std::string::npos) << message;
    EXPECT_NE(message.find("truncated"), std::string::npos) << message;
    EXPECT_NE(message.find("8000 frames"), std::string::npos) << message;
  }
}

TEST_F(AudioTest, StreamingPlaceholderLengthIsNotTruncation) {
  // Writers on pipes leave 0xFFFFFFFF as the data length; the data present is the recording.
  write_wav(path("full.wav"), mono(8000, tone(8000, 0.5, 440, 0.5)));
  auto bytes = raw(path("full.wav"));
  put_le32(bytes, 4, 0xffffffffu);
  put_le32(bytes, 40, 0xffffffffu);
  write_raw(path("stream.wav"), bytes);
  EXPECT_EQ(read_audio_file(path("stream.wav")).frames(), 4000);
}

TEST_F(AudioTest, OverlongHeaderRefusedBeforeReading) {
  // One second of data whose header claims 601 s: refused for its length, from the header.
  write_wav(path("one.wav"), mono(8000, tone(8000, 1.0, 440, 0.5)));
  auto bytes = raw(path("one.wav"));
  put_le32(bytes, 40, 601u * 8000u * 2u);
  put_le32(bytes, 4, 36u + 601u * 8000u * 2u);
  write_raw(path("long.wav"), bytes);
  auto message = error_of([&] { read_audio_file(path("long.wav")); });
  EXPECT_NE(message.find(path("long.wav").string()), std::string::npos) << message;
  EXPECT_NE(message.find("at most 600.0 s"), std::string::npos) << message;
  EXPECT_NE(message.find("601.0 s"), std::string::npos) << message;
  EXPECT_EQ(message.find("truncated"), std::string::npos) << message;

  // A complete 601 s recording (1 kHz, 8 bits: 601 kB) is refused too, and 599 s accepted.
  for (int seconds : {601, 599}) {
    write_encoded(path("real.wav"), mono(1000, std::vector<float>(static_cast<size_t>(seconds) * 1000, 0.0f)),
                  SF_FORMAT_PCM_U8);
    message = error_of([&] { read_audio_file(path("real.wav")); });
    if (seconds > 600) {
      EXPECT_NE(message.find("at most 600.0 s"), std::string::npos) << message;
    } else {
      EXPECT_EQ(message, "");
    }
  }
}

TEST_F(AudioTest, AbsurdRatesChannelsAndEncodingsRefused) {
  write_encoded(path("slow.wav"), mono(500, std::vector<float>(500, 0.0f)), SF_FORMAT_PCM_16);
  auto message = error_of([&] { read_audio_file(path("slow.wav")); });
  EXPECT_NE(message.find(path("slow.wav").string()), std::string::npos) << message;
  EXPECT_NE(message.find("1000 to 384000 Hz, got 500 Hz"), std::string::npos) << message;

  write_encoded(path("many.wav"), Waveform{8000, 33, std::vector<float>(33 * 10, 0.0f)}, SF_FORMAT_PCM_16);
  message = error_of([&] { read_audio_file(path("many.wav")); });
  EXPECT_NE(message.find("1 to 32 channels, got 33"), std::string::npos) << message;

  write_wav(path("none.wav"), Waveform{8000, 1, {}});
  message = error_of([&] { read_audio_file(path("none.wav")); });
  EXPECT_NE(message.find(path("none.wav").string()), std::string::npos) << message;
  EXPECT_NE(message.find("at least one audio frame"), std::string::npos) << message;

  // 40-bit PCM (block align 5): libsndfile has no such encoding.
  write_wav(path("ok.wav"), mono(8000, tone(8000, 0.1, 440, 0.5)));
  auto bytes = raw(path("ok.wav"));
  put_le16(bytes, 32, 5);
  put_le16(bytes, 34, 40);
  write_raw(path("b40.wav"), bytes);
  message = error_of([&] { read_audio_file(path("b40.wav")); });
  EXPECT_NE(message.find(path("b40.wav").string()), std::string::npos) << message;
  EXPECT_NE(message.find("unimplemented format"), std::string::npos) << message;
}

}  // namespace
