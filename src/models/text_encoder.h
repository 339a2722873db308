#pragma once
// The FM's text side: a prompt ("a photo of a coat") to an L2-normalised embedding in the
// same space as the image embeddings. No torch here.
#include <string>
#include <vector>

namespace edgefm::models {

class TextEncoder {
 public:
  virtual ~TextEncoder() = default;
  TextEncoder() = default;
  TextEncoder(const TextEncoder&) = delete;
  TextEncoder& operator=(const TextEncoder&) = delete;

  virtual int embedding_dim() const = 0;
  // Throws Error when the prompt holds no word the encoder knows (a class unknown to the FM).
  virtual std::vector<float> embed(const std::string& prompt) const = 0;
};

}  // namespace edgefm::models
