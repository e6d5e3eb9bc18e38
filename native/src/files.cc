// Raw tensor file IO for safetensors: read validated byte ranges of a file straight into new
// tensors, and write a header plus tensor bytes. The header is parsed and validated in TS.
#include "common.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace emlab {
namespace {

struct FileCloser {
  void operator()(std::FILE* f) const { if (f) std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

File openFile(const std::string& path, const char* mode) {
  File file(std::fopen(path.c_str(), mode));
  TORCH_CHECK_VALUE(file != nullptr, "cannot open ", path, ": ", std::strerror(errno));
  return file;
}

}  // namespace

static const OpTable filesOps("files", {
  // readTensors(path, [[offset, dtype, shape], ...], device) -> handles. Offsets are absolute.
  EMLAB_OP("readTensors", {
    std::string path = toString(info[0], op, 0);
    if (!info[1].IsArray()) throwType(info.Env(), op, 1, "an array of [offset, dtype, shape] entries");
    auto entries = info[1].As<Napi::Array>();
    auto device = toDevice(info[2], op, 2);
    File file = openFile(path, "rb");
    std::vector<at::Tensor> tensors;
    tensors.reserve(entries.Length());
    for (uint32_t i = 0; i < entries.Length(); ++i) {
      Napi::Value entryValue = entries.Get(i);
      if (!entryValue.IsArray()) throwType(info.Env(), op, 1, "an array of [offset, dtype, shape] entries");
      auto entry = entryValue.As<Napi::Array>();
      std::int64_t offset = toInt(entry.Get(0u), op, 1);
      at::Tensor t = at::empty(toIntList(entry.Get(2u), op, 1), at::TensorOptions().dtype(toDtype(entry.Get(1u), op, 1)));
      size_t bytes = static_cast<size_t>(t.numel()) * t.element_size();
      if (bytes > 0) {
        TORCH_CHECK_VALUE(fseeko(file.get(), static_cast<off_t>(offset), SEEK_SET) == 0, "cannot seek in ", path);
        size_t read = std::fread(t.data_ptr(), 1, bytes, file.get());
        TORCH_CHECK_VALUE(read == bytes, "short read in ", path, ": wanted ", bytes, " bytes at ", offset, ", got ", read);
      }
      tensors.push_back(device.is_cpu() ? t : t.to(device));
    }
    return wrapList(info.Env(), tensors);
  }),
  // writeTensors(path, header: Uint8Array, tensors[]): header bytes, then each tensor's bytes in order.
  EMLAB_OP("writeTensors", {
    std::string path = toString(info[0], op, 0);
    if (!info[1].IsTypedArray()) throwType(info.Env(), op, 1, "a Uint8Array");
    auto header = info[1].As<Napi::Uint8Array>();
    auto tensors = unwrapList(info[2], op, 2);
    File file = openFile(path, "wb");
    TORCH_CHECK_VALUE(std::fwrite(header.Data(), 1, header.ByteLength(), file.get()) == header.ByteLength(), "write failed: ", path);
    for (auto& tensor : tensors) {
      at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
      size_t bytes = static_cast<size_t>(t.numel()) * t.element_size();
      if (bytes > 0) TORCH_CHECK_VALUE(std::fwrite(t.data_ptr(), 1, bytes, file.get()) == bytes, "write failed: ", path);
    }
    TORCH_CHECK_VALUE(std::fflush(file.get()) == 0, "flush failed: ", path);
    return info.Env().Undefined();
  }),
});

}  // namespace emlab
