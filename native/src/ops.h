// Op registration from tables. Each op file declares one table of (name, function) entries:
//
//   static const emlab::OpTable shapeOps("shape", {
//       EMLAB_OP("view", { return wrap(info.Env(), unwrap(info[0], op, 0).view(toIntList(info[1], op, 1))); }),
//   });
//
// The name is written once: inside the body `op` is that name (for argument and error messages),
// and the body runs under guard(). A table adds itself to the addon's registry when the library
// loads, so adding an op file needs no edit anywhere else; addon.cc exports every registered op and
// refuses a name registered twice.
#pragma once

#include <napi.h>

#include <initializer_list>
#include <vector>

#include "errors.h"

namespace emlab {

using OpFunction = Napi::Value (*)(const Napi::CallbackInfo&);
using ConstantFunction = Napi::Value (*)(Napi::Env);

// One export: a function, or (function null) a constant computed once at load.
struct Op {
  const char* name;
  OpFunction function;
  ConstantFunction constant = nullptr;
};

// A named group of ops (one per source file); constructing it registers the group.
class OpTable {
 public:
  OpTable(const char* group, std::initializer_list<Op> ops);
};

// Exports every registered op on `exports`; throws a JS Error when two tables use the same name.
void exportRegisteredOps(Napi::Env env, Napi::Object exports);

}  // namespace emlab

// One table entry: `name` and a guarded body that sees `info` and `op` (== name).
#define EMLAB_OP(name, ...) EMLAB_OP_REPORTED_AS(name, name, __VA_ARGS__)

// A second entry point of an existing op (a fast path): exported as `name`, its errors name `opName`.
#define EMLAB_OP_REPORTED_AS(name, opName, ...)                                            \
  ::emlab::Op {                                                                            \
    name, [](const Napi::CallbackInfo& info) -> Napi::Value {                              \
      static constexpr const char* op = opName;                                            \
      return ::emlab::guard(info, op, [&]() -> Napi::Value { __VA_ARGS__ });               \
    }                                                                                      \
  }

// A constant export (version strings, op-code name lists): a body that sees `env`.
#define EMLAB_CONSTANT(name, ...) \
  ::emlab::Op { name, nullptr, [](Napi::Env env) -> Napi::Value { __VA_ARGS__ } }
