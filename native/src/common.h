// What every op file includes: libtorch, N-API, and the shim's plumbing (handles, argument
// conversion, errors, op tables). No op lives here. Also the precompiled header of the addon.
#pragma once

#include <napi.h>
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/generated/variable_factories.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "convert.h"
#include "errors.h"
#include "handles.h"
#include "ops.h"
