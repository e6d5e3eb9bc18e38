// Reading `torch.save` files (the zip format of torch >= 1.6, and the legacy format) with libtorch's own
// unpickler, no Python: a generic loader of a pickled tree of tensors, scalars, strings, lists and dicts.
// Every storage is placed on the CPU whatever device it was saved from. What the keys mean is decided in
// TS. libtorch 1.13's unpickler lacks some of what Python writes (APPEND, SETITEM, nn.Parameter's
// _rebuild_parameter): the pickle is rewritten into an equivalent it reads first.
#include "common.h"

#include <c10/core/CPUAllocator.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/import_read.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <cstring>
#include <stdexcept>
#include <tuple>
#include <unordered_map>

namespace emlab {
namespace {

// Throws (naming the path inside the tree) on anything the conversion below cannot represent, so
// that no tensor handle is created for a file that is then refused.
void checkSupported(const c10::IValue& value, const std::string& path) {
  if (value.isTensor() || value.isNone() || value.isBool() || value.isInt() || value.isDouble() || value.isString()) return;
  if (value.isList()) {
    auto list = value.toListRef();
    for (size_t i = 0; i < list.size(); ++i) checkSupported(list[i], path + "[" + std::to_string(i) + "]");
    return;
  }
  if (value.isTuple()) {
    const auto& elements = value.toTupleRef().elements();
    for (size_t i = 0; i < elements.size(); ++i) checkSupported(elements[i], path + "[" + std::to_string(i) + "]");
    return;
  }
  if (value.isGenericDict()) {
    for (const auto& entry : value.toGenericDict()) {
      const auto& key = entry.key();
      if (!(key.isString() || key.isInt())) throw std::invalid_argument(path + ": a dict key of type " + key.tagKind() + " (only str or int keys)");
      checkSupported(entry.value(), path + "[" + (key.isString() ? key.toStringRef() : std::to_string(key.toInt())) + "]");
    }
    return;
  }
  throw std::invalid_argument(path + ": a value of type " + value.tagKind() + " (only tensors, numbers, strings, lists and dicts)");
}

// Tensors become { tensor: handle }; dicts become { dict: [[key, value], ...] } (insertion order).
Napi::Value toJs(Napi::Env env, const c10::IValue& value) {
  if (value.isTensor()) {
    auto wrapper = Napi::Object::New(env);
    wrapper.Set("tensor", wrap(env, value.toTensor().detach()));
    return wrapper;
  }
  if (value.isNone()) return env.Null();
  if (value.isBool()) return Napi::Boolean::New(env, value.toBool());
  if (value.isInt()) return Napi::Number::New(env, static_cast<double>(value.toInt()));
  if (value.isDouble()) return Napi::Number::New(env, value.toDouble());
  if (value.isString()) return Napi::String::New(env, value.toStringRef());
  if (value.isList() || value.isTuple()) {
    std::vector<c10::IValue> items;
    if (value.isList()) {
      for (const auto& item : value.toListRef()) items.push_back(item);
    } else {
      items = value.toTupleRef().elements().vec();
    }
    auto array = Napi::Array::New(env, items.size());
    for (size_t i = 0; i < items.size(); ++i) array.Set(static_cast<uint32_t>(i), toJs(env, items[i]));
    return array;
  }
  auto entries = Napi::Array::New(env);
  uint32_t i = 0;
  for (const auto& entry : value.toGenericDict()) {
    auto pair = Napi::Array::New(env, 2);
    pair.Set(0u, toJs(env, entry.key()));
    pair.Set(1u, toJs(env, entry.value()));
    entries.Set(i++, pair);
  }
  auto wrapper = Napi::Object::New(env);
  wrapper.Set("dict", entries);
  return wrapper;
}

// The first bytes tell the zip format ("PK\3\4") from the legacy one (a pickle stream, 0x80 first).
std::string formatOf(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  TORCH_CHECK_VALUE(file != nullptr, "cannot open ", path);
  unsigned char head[4] = {0, 0, 0, 0};
  size_t read = std::fread(head, 1, 4, file);
  std::fclose(file);
  if (read == 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4) return "zip";
  if (read >= 1 && head[0] == 0x80) return "legacy";
  return "unknown";
}

// ---- rewriting a pickle for libtorch 1.13's unpickler ----------------------------------------------
// It lacks the APPEND and SETITEM opcodes (a one-element list, a one-key dict) and the
// _rebuild_parameter global. APPEND / SETITEM become MARK ... APPENDS / SETITEMS. And: a walk over the
// pickle's opcodes (protocols 2-4) that tracks, for every stack item, the byte span that produced it.
// A REDUCE whose callable is the _rebuild_parameter global and whose argument is a TUPLE3
// (tensor, requires_grad, hooks) is cut down to the tensor's bytes: the callable, requires_grad, hooks,
// TUPLE3 and REDUCE bytes are removed, the memo PUTs after TUPLE3 and REDUCE then store the tensor.
// (libtorch's unpickler has no POP, so removal it is.) A later GET of a memo entry whose PUT was removed
// is replaced by the GLOBAL it stored; any other such GET is an error naming the byte.
struct Item {
  size_t start = 0;
  size_t end = 0;
  bool mark = false;
  bool parameterGlobal = false;
  std::string globalBytes;  // the GLOBAL opcode that produced this item, if it is a global
  bool tuple3 = false;
  size_t tupleOp = 0;  // offset of the TUPLE3 byte
  size_t firstEnd = 0;  // end of the tuple's first element
};

struct MemoEntry {
  size_t putAt = 0;
  bool parameterGlobal = false;
  std::string globalBytes;
};

struct Get {
  size_t at;
  size_t length;
  uint64_t id;
};

std::string rewriteForLibtorch(const std::string& in) {
  std::vector<Item> stack;
  std::vector<std::tuple<size_t, size_t, std::string>> single;  // APPEND / SETITEM rewrites
  std::unordered_map<uint64_t, MemoEntry> memo;
  std::vector<std::pair<size_t, size_t>> removed;  // [start, end) byte ranges
  std::vector<Get> gets;
  size_t i = 0;
  const size_t n = in.size();
  auto need = [&](size_t bytes) { TORCH_CHECK_VALUE(i + bytes <= n, "truncated pickle at byte ", i); };
  auto u32 = [&](size_t at) { uint32_t v; std::memcpy(&v, in.data() + at, 4); return static_cast<uint64_t>(v); };
  auto u64 = [&](size_t at) { uint64_t v; std::memcpy(&v, in.data() + at, 8); return v; };
  auto pop = [&]() {
    TORCH_CHECK_VALUE(!stack.empty(), "malformed pickle: stack underflow at byte ", i);
    Item it = stack.back();
    stack.pop_back();
    return it;
  };
  auto popToMark = [&]() {
    while (true) {
      Item it = pop();
      if (it.mark) return it;
    }
  };
  auto line = [&]() {
    size_t e = in.find('\n', i);
    TORCH_CHECK_VALUE(e != std::string::npos, "malformed pickle line at byte ", i);
    std::string text = in.substr(i, e - i);
    i = e + 1;
    return text;
  };
  auto put = [&](size_t at, uint64_t id) {
    TORCH_CHECK_VALUE(!stack.empty(), "malformed pickle: PUT on an empty stack at byte ", at);
    memo[id] = {at, stack.back().parameterGlobal, stack.back().globalBytes};
    stack.back().end = i;
  };
  bool stopped = false;
  while (i < n && !stopped) {
    const size_t at = i;
    const unsigned char op = static_cast<unsigned char>(in[i++]);
    auto push = [&]() -> Item& {
      Item it;
      it.start = at;
      it.end = i;
      stack.push_back(it);
      return stack.back();
    };
    auto get = [&](uint64_t id) {
      gets.push_back({at, i - at, id});
      Item& it = push();
      auto entry = memo.find(id);
      if (entry != memo.end()) {
        it.parameterGlobal = entry->second.parameterGlobal;
        it.globalBytes = entry->second.globalBytes;
      }
    };
    auto combine = [&](size_t from) {
      Item t;
      t.start = from;
      t.end = i;
      stack.push_back(t);
    };
    switch (op) {
      case '.': stopped = true; break;                          // STOP
      case 0x80: need(1); i += 1; break;                        // PROTO
      case 0x95: need(8); i += 8; break;                        // FRAME
      case '(': push().mark = true; break;                      // MARK
      case 'N': case 0x88: case 0x89: case '}': case ']': case ')': case 0x8f: push(); break;
      case 'K': need(1); i += 1; push(); break;                 // BININT1
      case 'M': need(2); i += 2; push(); break;                 // BININT2
      case 'J': need(4); i += 4; push(); break;                 // BININT
      case 'G': need(8); i += 8; push(); break;                 // BINFLOAT
      case 0x8a: need(1); i += 1 + static_cast<unsigned char>(in[i]); push(); break;  // LONG1
      case 0x8b: need(4); i += 4 + u32(i); push(); break;       // LONG4
      case 'U': case 'C': case 0x8c: need(1); i += 1 + static_cast<unsigned char>(in[i]); push(); break;
      case 'X': case 'T': case 'B': need(4); i += 4 + u32(i); push(); break;
      case 0x8d: case 0x8e: need(8); i += 8 + u64(i); push(); break;
      case 'I': case 'L': case 'F': case 'S': case 'V': case 'P': line(); push(); break;
      case 'c': {                                               // GLOBAL
        std::string module = line();
        std::string name = line();
        Item& it = push();
        it.parameterGlobal = module == "torch._utils" && name == "_rebuild_parameter";
        it.globalBytes = in.substr(at, i - at);
        break;
      }
      case 0x93: { Item b = pop(); pop(); combine(b.start); break; }  // STACK_GLOBAL
      case 'q': need(1); i += 1; put(at, static_cast<unsigned char>(in[at + 1])); break;  // BINPUT
      case 'r': need(4); i += 4; put(at, u32(at + 1)); break;  // LONG_BINPUT
      case 'p': { std::string id = line(); put(at, std::stoull(id)); break; }  // PUT
      case 0x94: put(at, memo.size()); break;                  // MEMOIZE
      case 'h': need(1); i += 1; get(static_cast<unsigned char>(in[at + 1])); break;  // BINGET
      case 'j': need(4); i += 4; get(u32(at + 1)); break;     // LONG_BINGET
      case 'g': { std::string id = line(); get(std::stoull(id)); break; }  // GET
      case '0': pop(); break;                                   // POP
      case '1': popToMark(); break;                             // POP_MARK
      case '2': { TORCH_CHECK_VALUE(!stack.empty(), "malformed pickle"); Item copy = stack.back(); copy.start = at; copy.end = i; copy.tuple3 = false; stack.push_back(copy); break; }
      case 'Q': { Item a = pop(); combine(a.start); break; }    // BINPERSID
      case 0x85: { Item a = pop(); combine(a.start); break; }   // TUPLE1
      case 0x86: { pop(); Item a = pop(); combine(a.start); break; }  // TUPLE2
      case 0x87: {                                              // TUPLE3
        pop();
        pop();
        Item a = pop();
        combine(a.start);
        stack.back().tuple3 = true;
        stack.back().tupleOp = at;
        stack.back().firstEnd = a.end;
        break;
      }
      case 't': case 'l': case 'd': case 0x91: { Item mark = popToMark(); combine(mark.start); break; }
      case 'a': {                                               // APPEND: libtorch lacks it; MARK item APPENDS
        Item item = pop();
        TORCH_CHECK_VALUE(!stack.empty(), "malformed pickle");
        single.emplace_back(item.start, item.start, "(");
        single.emplace_back(at, at + 1, "e");
        stack.back().end = i;
        break;
      }
      case 's': {                                               // SETITEM: libtorch lacks it; MARK key value SETITEMS
        pop();
        Item key = pop();
        TORCH_CHECK_VALUE(!stack.empty(), "malformed pickle");
        single.emplace_back(key.start, key.start, "(");
        single.emplace_back(at, at + 1, "u");
        stack.back().end = i;
        break;
      }
      case 'e': case 'u': case 0x90: popToMark(); TORCH_CHECK_VALUE(!stack.empty(), "malformed pickle"); stack.back().end = i; break;
      case 'b': pop(); TORCH_CHECK_VALUE(!stack.empty(), "malformed pickle"); stack.back().end = i; break;  // BUILD
      case 0x81: { pop(); Item cls = pop(); combine(cls.start); break; }  // NEWOBJ
      case 0x92: { pop(); pop(); Item cls = pop(); combine(cls.start); break; }  // NEWOBJ_EX
      case 'R': {                                               // REDUCE
        Item args = pop();
        Item callable = pop();
        if (callable.parameterGlobal) {
          TORCH_CHECK_VALUE(args.tuple3, "an nn.Parameter pickled in an unexpected form (byte ", at, ")");
          removed.push_back({callable.start, callable.end});
          removed.push_back({args.firstEnd, args.tupleOp + 1});
          removed.push_back({at, at + 1});
        }
        combine(callable.start);
        break;
      }
      default:
        TORCH_CHECK_VALUE(false, "unsupported pickle opcode 0x", std::hex, static_cast<int>(op), " at byte ", std::dec, at);
    }
  }
  TORCH_CHECK_VALUE(stopped, "malformed pickle: no STOP");
  auto isRemoved = [&](size_t at) {
    for (const auto& r : removed) if (at >= r.first && at < r.second) return true;
    return false;
  };
  // Edits: removed ranges, and GETs outside them whose PUT was removed (replaced by the stored GLOBAL).
  std::vector<std::tuple<size_t, size_t, std::string>> edits = single;  // (start, end, replacement)
  for (const auto& r : removed) edits.emplace_back(r.first, r.second, "");
  if (edits.empty()) return in;
  for (const auto& g : gets) {
    if (isRemoved(g.at)) continue;
    auto entry = memo.find(g.id);
    if (entry == memo.end() || !isRemoved(entry->second.putAt)) continue;
    TORCH_CHECK_VALUE(!entry->second.globalBytes.empty() && !entry->second.parameterGlobal,
                      "an nn.Parameter's pickled parts are referenced elsewhere (memo ", g.id, " at byte ", g.at, ")");
    edits.emplace_back(g.at, g.at + g.length, entry->second.globalBytes);
  }
  std::sort(edits.begin(), edits.end());
  std::string out;
  out.reserve(n);
  size_t from = 0;
  for (const auto& [start, end, replacement] : edits) {
    TORCH_CHECK_VALUE(start >= from, "overlapping pickle edits at byte ", start);
    out.append(in, from, start - from);
    out.append(replacement);
    from = end;
  }
  out.append(in, from, std::string::npos);
  return out;
}

// ---- the legacy format (torch < 1.6, or _use_new_zipfile_serialization=False) -----------------------
// Five pickles (magic number, protocol version, sys_info, the object, the sorted storage keys), then each
// storage in key order as an int64 element count and its raw bytes. The bytes per element are only in
// the object pickle's storage types, so the object is unpickled twice: first with a distinct dummy
// pointer per storage (nothing is read) to learn each storage's byte size from the tensors built, then
// with the real bytes.

// The offset just past the STOP of the pickle starting at `start`.
size_t pickleEnd(const std::string& in, size_t start) {
  size_t i = start;
  const size_t n = in.size();
  auto need = [&](size_t bytes) { TORCH_CHECK_VALUE(i + bytes <= n, "truncated pickle at byte ", i); };
  auto u32 = [&](size_t at) { uint32_t v; std::memcpy(&v, in.data() + at, 4); return static_cast<size_t>(v); };
  auto u64 = [&](size_t at) { uint64_t v; std::memcpy(&v, in.data() + at, 8); return static_cast<size_t>(v); };
  auto skipLine = [&]() { size_t e = in.find('\n', i); TORCH_CHECK_VALUE(e != std::string::npos, "malformed pickle line at byte ", i); i = e + 1; };
  while (i < n) {
    const unsigned char op = static_cast<unsigned char>(in[i++]);
    switch (op) {
      case '.': return i;
      case 0x80: case 'K': case 'q': case 'h': need(1); i += 1; break;
      case 'M': need(2); i += 2; break;
      case 'J': case 'r': case 'j': need(4); i += 4; break;
      case 'G': case 0x95: need(8); i += 8; break;
      case 0x8a: case 'U': case 'C': case 0x8c: need(1); i += 1 + static_cast<unsigned char>(in[i]); break;
      case 0x8b: case 'X': case 'T': case 'B': need(4); i += 4 + u32(i); break;
      case 0x8d: case 0x8e: need(8); i += 8 + u64(i); break;
      case 'c': skipLine(); skipLine(); break;
      case 'I': case 'L': case 'F': case 'S': case 'V': case 'P': case 'p': case 'g': skipLine(); break;
      case '(': case 'N': case 0x88: case 0x89: case '}': case ']': case ')': case 0x8f: case 0x93: case 0x94:
      case '0': case '1': case '2': case 'Q': case 0x85: case 0x86: case 0x87: case 't': case 'l': case 'd':
      case 0x91: case 'a': case 's': case 'e': case 'u': case 0x90: case 'b': case 0x81: case 0x92: case 'R':
        break;
      default:
        TORCH_CHECK_VALUE(false, "unsupported pickle opcode 0x", std::hex, static_cast<int>(op), " at byte ", std::dec, i - 1);
    }
  }
  TORCH_CHECK_VALUE(false, "malformed pickle: no STOP");
}

c10::IValue unpickleWith(const std::string& pickle, std::function<at::DataPtr(const std::string&)> readRecord) {
  size_t offset = 0;
  auto readBytes = [&](char* buffer, size_t length) {
    size_t count = std::min(length, pickle.size() - offset);
    std::memcpy(buffer, pickle.data() + offset, count);
    offset += count;
    return count;
  };
  torch::jit::Unpickler unpickler(readBytes, nullptr, nullptr, std::move(readRecord), c10::Device(c10::kCPU));
  return unpickler.parse_ivalue();
}

void collectTensors(const c10::IValue& value, std::vector<at::Tensor>& out) {
  if (value.isTensor()) {
    out.push_back(value.toTensor());
  } else if (value.isList()) {
    for (const auto& item : value.toListRef()) collectTensors(item, out);
  } else if (value.isTuple()) {
    for (const auto& item : value.toTupleRef().elements()) collectTensors(item, out);
  } else if (value.isGenericDict()) {
    for (const auto& entry : value.toGenericDict()) collectTensors(entry.value(), out);
  }
}

c10::IValue readTorchLegacy(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  TORCH_CHECK_VALUE(file != nullptr, "cannot open ", path);
  std::string in;
  char chunk[65536];
  size_t got;
  while ((got = std::fread(chunk, 1, sizeof(chunk), file)) > 0) in.append(chunk, got);
  std::fclose(file);
  size_t bounds[6] = {0, 0, 0, 0, 0, 0};
  for (int k = 1; k <= 5; ++k) bounds[k] = pickleEnd(in, bounds[k - 1]);
  const std::string object = rewriteForLibtorch(in.substr(bounds[3], bounds[4] - bounds[3]));
  c10::IValue keysValue = unpickleWith(rewriteForLibtorch(in.substr(bounds[4], bounds[5] - bounds[4])), [](const std::string& key) -> at::DataPtr {
    TORCH_CHECK_VALUE(false, "unexpected storage ", key, " in the storage key list");
  });
  TORCH_CHECK_VALUE(keysValue.isList(), "the storage key list is not a list");
  std::vector<std::string> keys;
  for (const auto& k : keysValue.toListRef()) keys.push_back(k.toStringRef());
  // Pass 1: a distinct dummy pointer per storage key, never read.
  std::vector<char> markers(keys.size() + 1);
  std::unordered_map<const void*, std::string> keyOf;
  std::unordered_map<std::string, size_t> indexOf;
  for (size_t k = 0; k < keys.size(); ++k) indexOf[keys[k]] = k;
  auto dummy = [&](const std::string& key) {
    auto found = indexOf.find(key);
    TORCH_CHECK_VALUE(found != indexOf.end(), "storage ", key, " is not in the key list");
    void* ptr = &markers[found->second];
    keyOf[ptr] = key;
    return at::DataPtr(ptr, ptr, [](void*) {}, c10::Device(c10::kCPU));
  };
  std::unordered_map<std::string, size_t> bytesOf;
  {
    c10::IValue probe = unpickleWith(object, dummy);
    std::vector<at::Tensor> tensors;
    collectTensors(probe, tensors);
    for (const auto& t : tensors) {
      const auto& storage = t.storage();
      auto found = keyOf.find(storage.data_ptr().get());
      if (found != keyOf.end()) bytesOf[found->second] = storage.nbytes();
    }
  }
  // The storages' byte ranges, in key order.
  std::unordered_map<std::string, std::pair<size_t, size_t>> rangeOf;
  size_t at = bounds[5];
  for (size_t k = 0; k < keys.size(); ++k) {
    TORCH_CHECK_VALUE(at + 8 <= in.size(), "truncated storage ", keys[k]);
    int64_t count;
    std::memcpy(&count, in.data() + at, 8);
    auto found = bytesOf.find(keys[k]);
    TORCH_CHECK_VALUE(found != bytesOf.end() || k + 1 == keys.size(), "cannot size storage ", keys[k], " (no tensor uses it)");
    size_t bytes = found != bytesOf.end() ? found->second : in.size() - at - 8;
    TORCH_CHECK_VALUE(count >= 0 && at + 8 + bytes <= in.size(), "truncated storage ", keys[k]);
    rangeOf[keys[k]] = {at + 8, bytes};
    at += 8 + bytes;
  }
  // Pass 2: the real bytes.
  auto real = [&](const std::string& key) {
    auto [begin, bytes] = rangeOf.at(key);
    at::DataPtr data = c10::GetCPUAllocator()->allocate(bytes);
    if (bytes > 0) std::memcpy(data.get(), in.data() + begin, bytes);
    return data;
  };
  return unpickleWith(object, real);
}

c10::IValue readTorchZip(const std::string& path) {
  caffe2::serialize::PyTorchStreamReader reader(path);
  auto [data, size] = reader.getRecord("data.pkl");
  std::string pickle(static_cast<const char*>(data.get()), size);
  std::string rewritten = rewriteForLibtorch(pickle);
  if (rewritten.size() == pickle.size() && rewritten == pickle) {
    return torch::jit::readArchiveAndTensors("data", "", "", c10::nullopt, c10::nullopt, c10::Device(c10::kCPU), reader);
  }
  size_t offset = 0;
  auto readBytes = [&](char* buffer, size_t length) {
    size_t count = std::min(length, rewritten.size() - offset);
    std::memcpy(buffer, rewritten.data() + offset, count);
    offset += count;
    return count;
  };
  auto readRecord = [&](const std::string& name) { return std::get<0>(reader.getRecord("data/" + name)); };
  torch::jit::Unpickler unpickler(readBytes, nullptr, nullptr, readRecord, c10::Device(c10::kCPU));
  unpickler.set_version(reader.version());
  return unpickler.parse_ivalue();
}

}  // namespace

static const OpTable pickleOps("pickle", {
  // loadTorchFile(path) -> the unpickled tree (see toJs). Legacy (pre-1.6) files are refused by name.
  EMLAB_OP("loadTorchFile", {
    std::string path = toString(info[0], op, 0);
    std::string format = formatOf(path);
    TORCH_CHECK_VALUE(format == "zip" || format == "legacy", path, ": not a torch.save file (neither a zip archive nor a pickle)");
    c10::IValue value = format == "zip" ? readTorchZip(path) : readTorchLegacy(path);
    try {
      checkSupported(value, "<root>");
    } catch (const std::invalid_argument& error) {
      TORCH_CHECK_VALUE(false, path, ": ", error.what());
    }
    return toJs(info.Env(), value);
  }),
});

}  // namespace emlab
