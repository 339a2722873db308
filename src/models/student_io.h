#pragma once
// Internal to the torch side: writing a student artifact (see models/student.h).
#include <filesystem>

#include "models/nets.h"
#include "models/student.h"

namespace edgefm::models {

// Writes atomically; sets meta "arch", "embedding_dim" and (when absent) "version".
void save_student(const std::filesystem::path& path, const Net& net, const TextPool& pool,
                  json meta);

}  // namespace edgefm::models
