#include "data/audio.h"

#include <fftw3.h>
#include <samplerate.h>
#include <sndfile.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <utility>

#include "common/error.h"

namespace edgefm::data {
namespace {

constexpr int kMaxChannels = 32;
constexpr int kMinRate = 1000;
constexpr int kMaxRate = 384000;
// Header data lengths at or above this are the "length unknown" placeholders that streaming
// writers leave (0xFFFFFFFF, 0x7FFFFFFF, sox's 0x7ffff000), not a claim of a truncated file.
constexpr int64_t kUnknownLengthPlaceholder = 0x7ff00000;

std::string where_of(const std::string& name) { return "audio '" + name + "'"; }

// ---- libsndfile over a byte buffer ------------------------------------------------------

struct Cursor {
  const uint8_t* data;
  sf_count_t size;
  sf_count_t pos;
};

sf_count_t vio_length(void* user) { return static_cast<Cursor*>(user)->size; }

sf_count_t vio_seek(sf_count_t offset, int whence, void* user) {
  auto* c = static_cast<Cursor*>(user);
  sf_count_t base = whence == SEEK_CUR ? c->pos : whence == SEEK_END ? c->size : 0;
  c->pos = std::clamp<sf_count_t>(base + offset, 0, c->size);
  return c->pos;
}

sf_count_t vio_read(void* ptr, sf_count_t count, void* user) {
  auto* c = static_cast<Cursor*>(user);
  const sf_count_t n = std::clamp<sf_count_t>(c->size - c->pos, 0, std::max<sf_count_t>(count, 0));
  if (n > 0) std::memcpy(ptr, c->data + c->pos, static_cast<size_t>(n));
  c->pos += n;
  return n;
}

sf_count_t vio_write(const void*, sf_count_t, void*) { return 0; }

sf_count_t vio_tell(void* user) { return static_cast<Cursor*>(user)->pos; }

struct SndfileCloser {
  void operator()(SNDFILE* file) const { sf_close(file); }
};
using SndfilePtr = std::unique_ptr<SNDFILE, SndfileCloser>;

// libsndfile keeps the error of a failed open in a process-wide variable: opens are
// serialized so that each caller reads its own error (they only parse the header).
std::mutex& sndfile_open_mutex() {
  static std::mutex m;
  return m;
}

// Bytes per sample of the PCM and float encodings; 0 for the others.
int bytes_per_sample(int format) {
  switch (format & SF_FORMAT_SUBMASK) {
    case SF_FORMAT_PCM_S8:
    case SF_FORMAT_PCM_U8:
      return 1;
    case SF_FORMAT_PCM_16:
      return 2;
    case SF_FORMAT_PCM_24:
      return 3;
    case SF_FORMAT_PCM_32:
    case SF_FORMAT_FLOAT:
      return 4;
    case SF_FORMAT_DOUBLE:
      return 8;
    default:
      return 0;
  }
}

// The frame count the header claims when libsndfile found the file shorter than that (it
// then shortens SF_INFO::frames to the data present and notes it in its log); -1 when the
// log says nothing of the kind. WAV: "data : <claimed bytes> (should be <present bytes>)";
// AIFF: "Frame count read from 'COMM' chunk (<claimed>) not equal to ...".
int64_t claimed_frames(SNDFILE* file, const SF_INFO& info) {
  const int64_t frames = info.frames;
  const int64_t frame_bytes = int64_t{bytes_per_sample(info.format)} * info.channels;
  std::string log(1 << 14, '\0');
  sf_command(file, SFC_GET_LOG_INFO, log.data(), static_cast<int>(log.size()));
  log.resize(std::strlen(log.c_str()));
  int64_t claimed = -1;
  size_t at = 0;
  while ((at = log.find("data : ", at)) != std::string::npos) {
    long long said = 0, present = 0;
    if (std::sscanf(log.c_str() + at, "data : %lld (should be %lld)", &said, &present) == 2 &&
        said > present && said < kUnknownLengthPlaceholder) {
      if (frame_bytes > 0) {
        claimed = said / frame_bytes;
      } else {  // compressed (ADPCM, ...): in proportion; with no data, bytes bound frames
        claimed = present > 0 ? static_cast<int64_t>(std::ceil(static_cast<double>(frames) * said / present))
                              : said;
      }
    }
    at += 7;
  }
  at = log.find("Frame count read from 'COMM' chunk (");
  if (at != std::string::npos) {
    long long said = 0;
    if (std::sscanf(log.c_str() + at, "Frame count read from 'COMM' chunk (%lld)", &said) == 1 &&
        said > frames) {
      claimed = said;
    }
  }
  return claimed;
}

std::string seconds_text(double seconds) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f s", seconds);
  return buffer;
}

// ---- resampling -----------------------------------------------------------------------

// libsamplerate's band-limited sinc converter in its fastest setting: ~97 dB SNR, 80 %
// bandwidth, far beyond what a -80 dB floor stored in 8 bits resolves, and 2.4 times faster
// than SRC_SINC_MEDIUM_QUALITY (44.1 kHz -> 16 kHz, 1 s: 7 ms against 17 ms here). Pure
// arithmetic, so deterministic. It takes ratios in [1/256, 256].
constexpr int kConverter = SRC_SINC_FASTEST;

std::vector<float> resample_once(const std::vector<float>& mono, int from_rate, int to_rate) {
  const double ratio = static_cast<double>(to_rate) / from_rate;
  const auto expected = static_cast<int64_t>(std::llround(static_cast<double>(mono.size()) * ratio));
  std::vector<float> out(static_cast<size_t>(expected) + 16, 0.0f);
  SRC_DATA data{};
  data.data_in = mono.data();
  data.input_frames = static_cast<long>(mono.size());
  data.data_out = out.data();
  data.output_frames = static_cast<long>(out.size());
  data.src_ratio = ratio;
  data.end_of_input = 1;
  const int status = src_simple(&data, kConverter, 1);
  if (status != 0) {
    throw Error("resample " + std::to_string(from_rate) + " Hz -> " + std::to_string(to_rate) +
                " Hz: " + src_strerror(status));
  }
  out.resize(static_cast<size_t>(expected));  // zero-fills if the converter produced fewer
  if (data.output_frames_gen < expected) {
    std::fill(out.begin() + data.output_frames_gen, out.end(), 0.0f);
  }
  return out;
}

// ---- FFTW -------------------------------------------------------------------------------

// FFTW's planner (and plan destruction) is not thread-safe; executing a plan is.
std::mutex& fftw_planner_mutex() {
  static std::mutex m;
  return m;
}

struct FftwFree {
  void operator()(void* p) const { fftwf_free(p); }
};

double hz_to_mel(double hz) { return 2595.0 * std::log10(1.0 + hz / 700.0); }
double mel_to_hz(double mel) { return 700.0 * (std::pow(10.0, mel / 2595.0) - 1.0); }

}  // namespace

// ---- decoding ---------------------------------------------------------------------------

Waveform decode_audio(const uint8_t* bytes, size_t size, const std::string& name) {
  const std::string where = where_of(name);
  if (size == 0) fail_expected(where, "a sound file", "an empty file (0 bytes)");

  Cursor cursor{bytes, static_cast<sf_count_t>(size), 0};
  SF_VIRTUAL_IO io{vio_length, vio_seek, vio_read, vio_write, vio_tell};
  SF_INFO info{};
  SndfilePtr file;
  {
    std::lock_guard lock(sndfile_open_mutex());
    file.reset(sf_open_virtual(&io, SFM_READ, &info, &cursor));
    if (!file) {
      fail_expected(where, "a sound file libsndfile decodes (WAV, FLAC, Ogg, AIFF, ...)",
                    std::to_string(size) + " bytes it refuses: " + sf_strerror(nullptr));
    }
  }
  if (info.channels < 1 || info.channels > kMaxChannels) {
    fail_expected(where, "1 to " + std::to_string(kMaxChannels) + " channels",
                  std::to_string(info.channels));
  }
  if (info.samplerate < kMinRate || info.samplerate > kMaxRate) {
    fail_expected(where,
                  "a sample rate of " + std::to_string(kMinRate) + " to " +
                      std::to_string(kMaxRate) + " Hz",
                  std::to_string(info.samplerate) + " Hz");
  }
  const int64_t frames = info.frames;
  const int64_t claimed = claimed_frames(file.get(), info);
  const int64_t longest = std::max(frames, claimed);
  const double seconds = static_cast<double>(longest) / info.samplerate;
  if (seconds > kMaxRecordingSeconds) {
    fail_expected(where,
                  "a recording of at most " + seconds_text(kMaxRecordingSeconds) +
                      " (kMaxRecordingSeconds)",
                  seconds_text(seconds) + " (" + std::to_string(longest) + " frames at " +
                      std::to_string(info.samplerate) + " Hz, from the header)");
  }
  if (longest * info.channels > kMaxDecodedSamples) {
    fail_expected(where, "at most " + std::to_string(kMaxDecodedSamples) + " samples",
                  std::to_string(longest) + " frames x " + std::to_string(info.channels) +
                      " channels");
  }
  if (claimed > frames) {
    fail_expected(where, std::to_string(claimed) + " frames (as its header says)",
                  std::to_string(frames) + ": the file is truncated");
  }
  if (frames <= 0) fail_expected(where, "at least one audio frame", "none");

  Waveform wave;
  wave.sample_rate = info.samplerate;
  wave.channels = info.channels;
  wave.samples.resize(static_cast<size_t>(frames * info.channels));
  const sf_count_t got = sf_readf_float(file.get(), wave.samples.data(), frames);
  if (got < frames) {
    const int code = sf_error(file.get());
    fail_expected(where, std::to_string(frames) + " frames (as its header says)",
                  std::to_string(got) + ": the file is truncated or corrupt" +
                      (code ? std::string(" (") + sf_strerror(file.get()) + ")" : ""));
  }
  if (sf_error(file.get()) != SF_ERR_NO_ERROR) {
    throw Error(where + ": corrupt data (" + sf_strerror(file.get()) + ")");
  }
  // Integer encodings come normalized to [-1, 1); float ones as stored: clamp, drop NaNs.
  for (float& s : wave.samples) s = s == s ? std::clamp(s, -1.0f, 1.0f) : 0.0f;
  return wave;
}

Waveform read_audio_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open '" + path.string() + "'");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error("cannot read '" + path.string() + "'");
  return decode_audio(bytes.data(), bytes.size(), path.string());
}

void write_wav(const std::filesystem::path& path, const Waveform& wave) {
  const std::string where = "WAV '" + path.string() + "'";
  if (wave.channels < 1 || wave.channels > kMaxChannels) {
    fail_expected(where, "1 to " + std::to_string(kMaxChannels) + " channels",
                  std::to_string(wave.channels));
  }
  if (wave.samples.size() % static_cast<size_t>(wave.channels) != 0) {
    fail_expected(where, "a whole number of frames of " + std::to_string(wave.channels) + " samples",
                  std::to_string(wave.samples.size()) + " samples");
  }
  if (wave.sample_rate < 1) fail_expected(where, "a positive sample rate", std::to_string(wave.sample_rate));
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  SF_INFO info{};
  info.samplerate = wave.sample_rate;
  info.channels = wave.channels;
  info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
  SndfilePtr file(sf_open(path.c_str(), SFM_WRITE, &info));
  if (!file) throw Error("cannot write " + where + ": " + sf_strerror(nullptr));
  sf_command(file.get(), SFC_SET_CLIPPING, nullptr, SF_TRUE);
  const sf_count_t frames = wave.frames();
  if (sf_writef_float(file.get(), wave.samples.data(), frames) != frames) {
    throw Error("cannot write " + where + ": " + sf_strerror(file.get()));
  }
  if (sf_close(file.release()) != 0) throw Error("cannot write " + where);
}

// ---- the steps --------------------------------------------------------------------------

std::vector<float> mix_down(const Waveform& wave) {
  if (wave.channels < 1) fail_expected("mix down", "at least one channel", std::to_string(wave.channels));
  const int64_t frames = wave.frames();
  const auto c = static_cast<size_t>(wave.channels);
  if (c == 1) return std::vector<float>(wave.samples.begin(), wave.samples.begin() + frames);
  std::vector<float> mono(static_cast<size_t>(frames));
  const float scale = 1.0f / static_cast<float>(c);
  for (size_t f = 0; f < mono.size(); ++f) {
    const float* frame = wave.samples.data() + f * c;
    float sum = 0.0f;
    for (size_t i = 0; i < c; ++i) sum += frame[i];
    mono[f] = sum * scale;
  }
  return mono;
}

std::vector<float> resample(const std::vector<float>& mono, int from_rate, int to_rate) {
  if (from_rate < 1 || to_rate < 1) {
    fail_expected("resample", "positive sample rates",
                  std::to_string(from_rate) + " Hz -> " + std::to_string(to_rate) + " Hz");
  }
  if (from_rate == to_rate || mono.empty()) {
    if (mono.empty()) return {};
    return mono;
  }
  // Beyond libsamplerate's ratio range go through an intermediate rate 16 times the target.
  if (static_cast<double>(to_rate) / from_rate < 1.0 / 256) {
    return resample_once(resample_once(mono, from_rate, to_rate * 16), to_rate * 16, to_rate);
  }
  if (static_cast<double>(to_rate) / from_rate > 256) {
    const int middle = std::max(1, to_rate / 16);
    return resample_once(resample_once(mono, from_rate, middle), middle, to_rate);
  }
  return resample_once(mono, from_rate, to_rate);
}

std::vector<float> fixed_window(const std::vector<float>& mono, int64_t length) {
  if (length < 0) fail_expected("fixed window", "a length >= 0", std::to_string(length));
  const auto n = static_cast<int64_t>(mono.size());
  std::vector<float> out(static_cast<size_t>(length), 0.0f);
  if (n >= length) {
    const int64_t start = (n - length) / 2;
    std::copy(mono.begin() + start, mono.begin() + start + length, out.begin());
  } else {
    const int64_t offset = (length - n) / 2;
    std::copy(mono.begin(), mono.end(), out.begin() + offset);
  }
  return out;
}

// ---- log-mel ----------------------------------------------------------------------------

struct LogMel::Impl {
  AudioPreprocess params;
  int n_fft = 0;
  int bins = 0;    // n_fft / 2 + 1
  int frames = 0;
  int hop = 0;
  fftwf_plan plan = nullptr;
  // The periodic Hann window times sqrt(scale), so that |FFT|^2 is the scaled power directly.
  std::vector<float> window;
  // Sparse HTK triangles: band m covers bins first[m] .. first[m] + count[m] - 1 with the
  // weights at weights[offset[m] ...].
  std::vector<int> first, count, offset;
  std::vector<float> weights;
  // dB -> [0, 1]: value = (10 log10(power) - floor_db) / -floor_db = a * ln(power) + b.
  float a = 0, b = 0;
  float power_floor = 0;  // powers at or below this map to 0 (max(floor_db, -100 dB))
};

LogMel::LogMel(const AudioPreprocess& params) : impl_(std::make_unique<Impl>()) {
  validate(audio_spec(params), "log-mel parameters");
  Impl& m = *impl_;
  m.params = params;
  m.n_fft = params.n_fft;
  m.bins = params.n_fft / 2 + 1;
  m.frames = params.frames();
  m.hop = params.hop;
  const int n = m.n_fft;

  // Scaling. A sine of amplitude A at a bin centre, under window w, has one-sided FFT power
  // summed over its bins of (A^2 / 4) * N * sum(w^2) (Parseval over the window's kernel;
  // Hann: its power lies 1/6, 2/3, 1/6 in three bins). Scaling |X[k]|^2 by
  // 4 / (N * sum(w^2)) makes that sum A^2: a full-scale sine (A = 1) is 0 dB in total.
  // A band reads that power weighted by its triangle, so at most 0 dB: 0 dB when the tone
  // and its two neighbouring bins sit under the triangle's peak, less between band centres
  // (measured with the defaults, full scale: 1 kHz -1.1 dB, 3 kHz -0.5 dB, 440 Hz -2.9 dB).
  std::vector<double> hann(static_cast<size_t>(n));
  double sum_sq = 0;
  for (int i = 0; i < n; ++i) {
    hann[static_cast<size_t>(i)] = 0.5 - 0.5 * std::cos(2.0 * M_PI * i / n);  // periodic
    sum_sq += hann[static_cast<size_t>(i)] * hann[static_cast<size_t>(i)];
  }
  const double root_scale = std::sqrt(4.0 / (n * sum_sq));
  m.window.resize(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) m.window[static_cast<size_t>(i)] = static_cast<float>(hann[static_cast<size_t>(i)] * root_scale);

  // HTK mel triangles: mel_bands + 2 points evenly spaced in mel from fmin to fmax.
  const int bands = params.mel_bands;
  const double mel_lo = hz_to_mel(params.fmin_hz);
  const double mel_hi = hz_to_mel(params.fmax_hz);
  std::vector<double> edge(static_cast<size_t>(bands + 2));
  for (int i = 0; i < bands + 2; ++i) {
    edge[static_cast<size_t>(i)] = mel_to_hz(mel_lo + (mel_hi - mel_lo) * i / (bands + 1));
  }
  const double bin_hz = static_cast<double>(params.sample_rate) / n;
  for (int band = 0; band < bands; ++band) {
    const double lo = edge[static_cast<size_t>(band)];
    const double mid = edge[static_cast<size_t>(band + 1)];
    const double hi = edge[static_cast<size_t>(band + 2)];
    m.first.push_back(0);
    m.count.push_back(0);
    m.offset.push_back(static_cast<int>(m.weights.size()));
    for (int k = 0; k < m.bins; ++k) {
      const double f = k * bin_hz;
      const double w = std::min((f - lo) / (mid - lo), (hi - f) / (hi - mid));
      if (w <= 0) continue;
      if (m.count.back() == 0) m.first.back() = k;
      // Bins are contiguous within a triangle: pad any gap (there is none for a convex shape).
      while (m.first.back() + m.count.back() < k) {
        m.weights.push_back(0.0f);
        ++m.count.back();
      }
      m.weights.push_back(static_cast<float>(w));
      ++m.count.back();
    }
  }

  const double floor_db = params.floor_db;
  m.a = static_cast<float>(10.0 / std::log(10.0) / -floor_db);
  m.b = 1.0f;  // (10 log10 p - floor) / -floor = 10 log10 p / -floor + 1
  m.power_floor = static_cast<float>(std::pow(10.0, std::max(floor_db, -100.0) / 10.0));

  std::unique_ptr<float, FftwFree> in(fftwf_alloc_real(static_cast<size_t>(n)));
  std::unique_ptr<fftwf_complex, FftwFree> out(fftwf_alloc_complex(static_cast<size_t>(m.bins)));
  if (!in || !out) throw Error("log-mel: cannot allocate FFT buffers");
  {
    // FFTW_ESTIMATE: the same plan, hence bit-identical spectra, on every run.
    std::lock_guard lock(fftw_planner_mutex());
    m.plan = fftwf_plan_dft_r2c_1d(n, in.get(), out.get(), FFTW_ESTIMATE);
  }
  if (!m.plan) throw Error("log-mel: FFTW cannot plan a " + std::to_string(n) + "-point FFT");
}

LogMel::~LogMel() {
  if (impl_ && impl_->plan) {
    std::lock_guard lock(fftw_planner_mutex());
    fftwf_destroy_plan(impl_->plan);
  }
}

const AudioPreprocess& LogMel::params() const { return impl_->params; }

void LogMel::compute(const float* window, float* out) const {
  const Impl& m = *impl_;
  const auto n = static_cast<size_t>(m.n_fft);
  const auto bins = static_cast<size_t>(m.bins);
  const auto frames = static_cast<size_t>(m.frames);
  // Per-call buffers from fftwf_malloc: the plan's alignment, so new-array execution is valid.
  std::unique_ptr<float, FftwFree> in(fftwf_alloc_real(n));
  std::unique_ptr<fftwf_complex, FftwFree> spectrum(fftwf_alloc_complex(bins));
  std::unique_ptr<float, FftwFree> power(fftwf_alloc_real(bins));
  if (!in || !spectrum || !power) throw Error("log-mel: cannot allocate FFT buffers");
  float* x = in.get();
  float* p = power.get();
  const fftwf_complex* s = spectrum.get();
  const float* w = m.window.data();
  const size_t bands = m.first.size();
  for (size_t t = 0; t < frames; ++t) {
    const float* frame = window + t * static_cast<size_t>(m.hop);
    for (size_t i = 0; i < n; ++i) x[i] = frame[i] * w[i];
    fftwf_execute_dft_r2c(m.plan, x, spectrum.get());
    for (size_t k = 0; k < bins; ++k) p[k] = s[k][0] * s[k][0] + s[k][1] * s[k][1];
    for (size_t band = 0; band < bands; ++band) {
      const float* pw = p + m.first[band];
      const float* tw = m.weights.data() + m.offset[band];
      float sum = 0.0f;
      for (int i = 0; i < m.count[band]; ++i) sum += pw[i] * tw[i];
      // !(sum > floor) also sends a NaN to 0.
      const float v = sum > m.power_floor ? m.a * std::log(sum) + m.b : 0.0f;
      out[band * frames + t] = std::clamp(v, 0.0f, 1.0f);
    }
  }
}

// ---- the whole preprocessing ------------------------------------------------------------

namespace {

// One LogMel (one FFT plan) per distinct set of parameters, shared by every caller.
std::shared_ptr<const LogMel> log_mel_for(const AudioPreprocess& params) {
  static std::mutex mutex;
  static std::vector<std::pair<AudioPreprocess, std::shared_ptr<const LogMel>>> cache;
  constexpr size_t kMaxCached = 16;
  std::lock_guard lock(mutex);
  for (const auto& [key, value] : cache) {
    if (key == params) return value;
  }
  auto made = std::make_shared<const LogMel>(params);
  if (cache.size() >= kMaxCached) cache.erase(cache.begin());
  cache.emplace_back(params, made);
  return made;
}

}  // namespace

std::vector<uint8_t> preprocess_audio(const Waveform& wave, const SampleSpec& spec) {
  if (spec.modality != Modality::audio) {
    fail_expected("audio preprocessing", "a sample spec of modality audio", spec.describe());
  }
  if (wave.channels < 1 || wave.frames() < 1 || wave.sample_rate < 1) {
    fail_expected("audio preprocessing", "a recording with channels, frames and a sample rate",
                  std::to_string(wave.channels) + " channels, " + std::to_string(wave.frames()) +
                      " frames at " + std::to_string(wave.sample_rate) + " Hz");
  }
  const AudioPreprocess& a = spec.audio;
  const size_t count = static_cast<size_t>(a.mel_bands) * static_cast<size_t>(a.frames());
  if (static_cast<int64_t>(count) != spec.shape.numel()) {
    fail_expected("audio preprocessing", "a spec shape of 1 x mel_bands x frames",
                  to_string(spec.shape));
  }
  const auto log_mel = log_mel_for(a);
  // The common case (mono at the spec's rate, already the window's length) copies nothing.
  std::vector<float> buffer;
  const std::vector<float>* signal = &wave.samples;
  if (wave.channels != 1) {
    buffer = mix_down(wave);
    signal = &buffer;
  }
  if (wave.sample_rate != a.sample_rate) {
    buffer = resample(*signal, wave.sample_rate, a.sample_rate);
    signal = &buffer;
  }
  if (static_cast<int64_t>(signal->size()) != a.window_samples()) {
    buffer = fixed_window(*signal, a.window_samples());
    signal = &buffer;
  }
  std::vector<float> mel(count);
  log_mel->compute(signal->data(), mel.data());
  std::vector<uint8_t> bytes(count);
  to_bytes(mel.data(), count, bytes.data());
  return bytes;
}

}  // namespace edgefm::data
