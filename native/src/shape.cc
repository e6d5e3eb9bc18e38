// Views, reshapes, joins, splits and indexing. No arithmetic here.
#include "common.h"

namespace emlab {

void registerShape(Napi::Env env, Napi::Object exports) {
  EMLAB_FN(exports, "reshape", { return wrap(info.Env(), at::reshape(unwrap(info[0], "reshape", 0), toIntList(info[1], "reshape", 1))); });
  EMLAB_FN(exports, "view", { return wrap(info.Env(), unwrap(info[0], "view", 0).view(toIntList(info[1], "view", 1))); });
  EMLAB_FN(exports, "permute", { return wrap(info.Env(), unwrap(info[0], "permute", 0).permute(toIntList(info[1], "permute", 1))); });
  EMLAB_FN(exports, "transpose", {
    return wrap(info.Env(), at::transpose(unwrap(info[0], "transpose", 0), toInt(info[1], "transpose", 1), toInt(info[2], "transpose", 2)));
  });
  EMLAB_FN(exports, "unsqueeze", { return wrap(info.Env(), at::unsqueeze(unwrap(info[0], "unsqueeze", 0), toInt(info[1], "unsqueeze", 1))); });
  EMLAB_FN(exports, "squeeze", {
    const at::Tensor& x = unwrap(info[0], "squeeze", 0);
    auto dim = toOptionalInt(info[1], "squeeze", 1);
    return wrap(info.Env(), dim ? at::squeeze(x, *dim) : at::squeeze(x));
  });
  EMLAB_FN(exports, "flatten", {
    return wrap(info.Env(), at::flatten(unwrap(info[0], "flatten", 0), toInt(info[1], "flatten", 1), toInt(info[2], "flatten", 2)));
  });
  EMLAB_FN(exports, "expand", { return wrap(info.Env(), unwrap(info[0], "expand", 0).expand(toIntList(info[1], "expand", 1))); });
  EMLAB_FN(exports, "repeat", { return wrap(info.Env(), unwrap(info[0], "repeat", 0).repeat(toIntList(info[1], "repeat", 1))); });
  EMLAB_FN(exports, "repeatInterleave", {
    return wrap(info.Env(), at::repeat_interleave(unwrap(info[0], "repeatInterleave", 0), toInt(info[1], "repeatInterleave", 1),
                                                  toInt(info[2], "repeatInterleave", 2)));
  });
  EMLAB_FN(exports, "flip", { return wrap(info.Env(), at::flip(unwrap(info[0], "flip", 0), toIntList(info[1], "flip", 1))); });
  EMLAB_FN(exports, "narrow", {
    return wrap(info.Env(), at::narrow(unwrap(info[0], "narrow", 0), toInt(info[1], "narrow", 1), toInt(info[2], "narrow", 2),
                                       toInt(info[3], "narrow", 3)));
  });
  // slice(x, dim, start|null, end|null, step)
  EMLAB_FN(exports, "slice", {
    return wrap(info.Env(), at::slice(unwrap(info[0], "slice", 0), toInt(info[1], "slice", 1), toOptionalInt(info[2], "slice", 2),
                                      toOptionalInt(info[3], "slice", 3), toInt(info[4], "slice", 4)));
  });
  EMLAB_FN(exports, "select", {
    return wrap(info.Env(), at::select(unwrap(info[0], "select", 0), toInt(info[1], "select", 1), toInt(info[2], "select", 2)));
  });
  EMLAB_FN(exports, "indexSelect", {
    return wrap(info.Env(), at::index_select(unwrap(info[0], "indexSelect", 0), toInt(info[1], "indexSelect", 1),
                                             unwrap(info[2], "indexSelect", 2)));
  });
  EMLAB_FN(exports, "gather", {
    return wrap(info.Env(), at::gather(unwrap(info[0], "gather", 0), toInt(info[1], "gather", 1), unwrap(info[2], "gather", 2)));
  });
  EMLAB_FN(exports, "scatter", {
    return wrap(info.Env(), at::scatter(unwrap(info[0], "scatter", 0), toInt(info[1], "scatter", 1), unwrap(info[2], "scatter", 2),
                                        unwrap(info[3], "scatter", 3)));
  });
  EMLAB_FN(exports, "scatterAdd", {
    return wrap(info.Env(), at::scatter_add(unwrap(info[0], "scatterAdd", 0), toInt(info[1], "scatterAdd", 1),
                                            unwrap(info[2], "scatterAdd", 2), unwrap(info[3], "scatterAdd", 3)));
  });
  // index(x, [tensor|null, ...]): advanced indexing, null = full slice of that dim.
  EMLAB_FN(exports, "index", {
    auto indices = unwrapList(info[1], "index", 1);
    c10::List<c10::optional<at::Tensor>> list;
    for (auto& t : indices) list.push_back(t.defined() ? c10::optional<at::Tensor>(t) : c10::nullopt);
    return wrap(info.Env(), at::index(unwrap(info[0], "index", 0), list));
  });
  EMLAB_FN(exports, "indexPut_", {
    auto indices = unwrapList(info[1], "indexPut_", 1);
    c10::List<c10::optional<at::Tensor>> list;
    for (auto& t : indices) list.push_back(t.defined() ? c10::optional<at::Tensor>(t) : c10::nullopt);
    unwrap(info[0], "indexPut_", 0).index_put_(list, unwrap(info[2], "indexPut_", 2), toBool(info[3], "indexPut_", 3));
    return info.Env().Undefined();
  });
  EMLAB_FN(exports, "cat", { return wrap(info.Env(), at::cat(unwrapList(info[0], "cat", 0), toInt(info[1], "cat", 1))); });
  EMLAB_FN(exports, "stack", { return wrap(info.Env(), at::stack(unwrapList(info[0], "stack", 0), toInt(info[1], "stack", 1))); });
  // split(x, size | sizes[], dim)
  EMLAB_FN(exports, "split", {
    const at::Tensor& x = unwrap(info[0], "split", 0);
    std::int64_t dim = toInt(info[2], "split", 2);
    if (info[1].IsArray()) return wrapList(info.Env(), at::split_with_sizes(x, toIntList(info[1], "split", 1), dim));
    return wrapList(info.Env(), at::split(x, toInt(info[1], "split", 1), dim));
  });
  EMLAB_FN(exports, "chunk", {
    return wrapList(info.Env(), at::chunk(unwrap(info[0], "chunk", 0), toInt(info[1], "chunk", 1), toInt(info[2], "chunk", 2)));
  });
  EMLAB_FN(exports, "triu", { return wrap(info.Env(), at::triu(unwrap(info[0], "triu", 0), toInt(info[1], "triu", 1))); });
  EMLAB_FN(exports, "tril", { return wrap(info.Env(), at::tril(unwrap(info[0], "tril", 0), toInt(info[1], "tril", 1))); });
}

}  // namespace emlab
