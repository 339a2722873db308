#pragma once
// Internal to the torch side: writing a student artifact (see models/student.h).
#include <filesystem>

#include "models/nets.h"
#include "models/student.h"

namespace edgefm::models {

}  // namespace edgefm::models

namespace edgefm::models {

// A trainable copy of a loaded student's network (for warm starts). Throws Error when the
// student was not built by this project's torch code.
Net clone_student_net(const Student& student);

}  // namespace edgefm::models
