// Views, reshapes, joins, splits and indexing. No arithmetic here.
#include "common.h"

namespace emlab {

static const OpTable shapeOps("shape", {
  EMLAB_OP("reshape", { return wrap(info.Env(), at::reshape(unwrap(info[0], op, 0), toIntList(info[1], op, 1))); }),
  EMLAB_OP("view", { return wrap(info.Env(), unwrap(info[0], op, 0).view(toIntList(info[1], op, 1))); }),
  EMLAB_OP("permute", { return wrap(info.Env(), unwrap(info[0], op, 0).permute(toIntList(info[1], op, 1))); }),
  EMLAB_OP("transpose", {
    return wrap(info.Env(), at::transpose(unwrap(info[0], op, 0), toInt(info[1], op, 1), toInt(info[2], op, 2)));
  }),
  EMLAB_OP("unsqueeze", { return wrap(info.Env(), at::unsqueeze(unwrap(info[0], op, 0), toInt(info[1], op, 1))); }),
  EMLAB_OP("squeeze", {
    const at::Tensor& x = unwrap(info[0], op, 0);
    auto dim = toOptionalInt(info[1], op, 1);
    return wrap(info.Env(), dim ? at::squeeze(x, *dim) : at::squeeze(x));
  }),
  EMLAB_OP("flatten", {
    return wrap(info.Env(), at::flatten(unwrap(info[0], op, 0), toInt(info[1], op, 1), toInt(info[2], op, 2)));
  }),
  EMLAB_OP("expand", { return wrap(info.Env(), unwrap(info[0], op, 0).expand(toIntList(info[1], op, 1))); }),
  EMLAB_OP("repeat", { return wrap(info.Env(), unwrap(info[0], op, 0).repeat(toIntList(info[1], op, 1))); }),
  EMLAB_OP("repeatInterleave", {
    return wrap(info.Env(), at::repeat_interleave(unwrap(info[0], op, 0), toInt(info[1], op, 1),
                                                  toInt(info[2], op, 2)));
  }),
  EMLAB_OP("flip", { return wrap(info.Env(), at::flip(unwrap(info[0], op, 0), toIntList(info[1], op, 1))); }),
  EMLAB_OP("narrow", {
    return wrap(info.Env(), at::narrow(unwrap(info[0], op, 0), toInt(info[1], op, 1), toInt(info[2], op, 2),
                                       toInt(info[3], op, 3)));
  }),
  // slice(x, dim, start|null, end|null, step)
  EMLAB_OP("slice", {
    return wrap(info.Env(), at::slice(unwrap(info[0], op, 0), toInt(info[1], op, 1), toOptionalInt(info[2], op, 2),
                                      toOptionalInt(info[3], op, 3), toInt(info[4], op, 4)));
  }),
  EMLAB_OP("select", {
    return wrap(info.Env(), at::select(unwrap(info[0], op, 0), toInt(info[1], op, 1), toInt(info[2], op, 2)));
  }),
  EMLAB_OP("indexSelect", {
    return wrap(info.Env(), at::index_select(unwrap(info[0], op, 0), toInt(info[1], op, 1),
                                             unwrap(info[2], op, 2)));
  }),
  EMLAB_OP("gather", {
    return wrap(info.Env(), at::gather(unwrap(info[0], op, 0), toInt(info[1], op, 1), unwrap(info[2], op, 2)));
  }),
  EMLAB_OP("scatter", {
    return wrap(info.Env(), at::scatter(unwrap(info[0], op, 0), toInt(info[1], op, 1), unwrap(info[2], op, 2),
                                        unwrap(info[3], op, 3)));
  }),
  EMLAB_OP("scatterAdd", {
    return wrap(info.Env(), at::scatter_add(unwrap(info[0], op, 0), toInt(info[1], op, 1),
                                            unwrap(info[2], op, 2), unwrap(info[3], op, 3)));
  }),
  // index(x, [tensor|null, ...]): advanced indexing, null = full slice of that dim.
  EMLAB_OP("index", {
    auto indices = unwrapList(info[1], op, 1);
    c10::List<c10::optional<at::Tensor>> list;
    for (auto& t : indices) list.push_back(t.defined() ? c10::optional<at::Tensor>(t) : c10::nullopt);
    return wrap(info.Env(), at::index(unwrap(info[0], op, 0), list));
  }),
  EMLAB_OP("indexPut_", {
    auto indices = unwrapList(info[1], op, 1);
    c10::List<c10::optional<at::Tensor>> list;
    for (auto& t : indices) list.push_back(t.defined() ? c10::optional<at::Tensor>(t) : c10::nullopt);
    unwrap(info[0], op, 0).index_put_(list, unwrap(info[2], op, 2), toBool(info[3], op, 3));
    return info.Env().Undefined();
  }),
  EMLAB_OP("cat", { return wrap(info.Env(), at::cat(unwrapList(info[0], op, 0), toInt(info[1], op, 1))); }),
  EMLAB_OP("stack", { return wrap(info.Env(), at::stack(unwrapList(info[0], op, 0), toInt(info[1], op, 1))); }),
  // split(x, size | sizes[], dim)
  EMLAB_OP("split", {
    const at::Tensor& x = unwrap(info[0], op, 0);
    std::int64_t dim = toInt(info[2], op, 2);
    if (info[1].IsArray()) return wrapList(info.Env(), at::split_with_sizes(x, toIntList(info[1], op, 1), dim));
    return wrapList(info.Env(), at::split(x, toInt(info[1], op, 1), dim));
  }),
  EMLAB_OP("chunk", {
    return wrapList(info.Env(), at::chunk(unwrap(info[0], op, 0), toInt(info[1], op, 1), toInt(info[2], op, 2)));
  }),
  EMLAB_OP("triu", { return wrap(info.Env(), at::triu(unwrap(info[0], op, 0), toInt(info[1], op, 1))); }),
  EMLAB_OP("tril", { return wrap(info.Env(), at::tril(unwrap(info[0], op, 0), toInt(info[1], op, 1))); }),
});

}  // namespace emlab
