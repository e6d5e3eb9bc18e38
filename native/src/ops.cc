// The registry behind OpTable: tables register at library load (static initialisation, before the
// module's init runs); exportRegisteredOps puts every op on the addon's exports.
#include "common.h"

#include <set>
#include <string>

namespace emlab {

namespace {
struct Group {
  const char* name;
  std::vector<Op> ops;
};

// Function-local so it exists before any table's constructor runs, whatever the link order.
std::vector<Group>& registry() {
  static std::vector<Group> groups;
  return groups;
}
}  // namespace

OpTable::OpTable(const char* group, std::initializer_list<Op> ops) { registry().push_back(Group{group, std::vector<Op>(ops)}); }

void exportRegisteredOps(Napi::Env env, Napi::Object exports) {
  std::set<std::string> seen;
  for (const Group& group : registry()) {
    for (const Op& op : group.ops) {
      if (!seen.insert(op.name).second) {
        throw Napi::Error::New(env, std::string("emlab addon: op ") + op.name + " is registered twice (again by " + group.name + ")");
      }
      if (op.function != nullptr) exports.Set(op.name, Napi::Function::New(env, op.function, op.name));
      else exports.Set(op.name, op.constant(env));
    }
  }
}

}  // namespace emlab
