// The audio decoder (data/audio.h: WAV and what else libsndfile reads) and, for short
// recordings, the whole preprocessing to a log-mel tensor.
#include "data/audio.h"
#include "fuzz_input.h"

using namespace edgefm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto wave = data::decode_audio(data, size, "fuzz");
    if (wave.channels <= 0 || wave.samples.size() % static_cast<size_t>(wave.channels) != 0) {
      fuzz::fuzz_fail("decoded samples are not whole frames");
    }
    // Long recordings only cost time here: the preprocessing of the first second is the same.
    if (wave.frames() <= 4 * int64_t{wave.sample_rate}) {
      data::AudioPreprocess params;
      params.window_s = 0.1;
      params.mel_bands = 16;
      const auto tensor = data::preprocess_audio(wave, data::audio_spec(params));
      if (tensor.empty()) fuzz::fuzz_fail("empty log-mel tensor");
    }
  } catch (const Error&) {
  }
  return 0;
}
