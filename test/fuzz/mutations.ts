// Mutations of a model directory for the CLI mutation fuzzer: each names the file it changes, what it does, and
// whether every correct reader must refuse the result ("reject") or may accept it ("any": e.g. a flipped weight
// byte is still a valid checkpoint). Randomness comes from the case's own seeded generator, so a case reproduces.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export type Expectation = "reject" | "any";
export interface Mutation {
  name: string;
  expect: Expectation;
  apply(dir: string, random: () => number): void;
}

const pick = <T>(random: () => number, items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const editJson = (file: string, edit: (json: Record<string, unknown>) => void): void => {
  const json = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  edit(json);
  writeFileSync(file, JSON.stringify(json));
};

const REQUIRED_SIZES = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"];
const BAD_SIZES: unknown[] = [-1, 0, 1.5, 1e9, 1e308, "8", null, true, [], {}];
const BAD_POSITIVE_FLOATS: unknown[] = [0, -1, -1e-6, "1e-6", true, []];

/** Safetensors pieces: header JSON, its byte length and the data section. */
function splitSafetensors(bytes: Buffer): {
  header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  data: Buffer;
} {
  const n = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + n).toString("utf8")), data: bytes.subarray(8 + n) };
}
function joinSafetensors(headerText: string | Buffer, data: Buffer): Buffer {
  const json = typeof headerText === "string" ? Buffer.from(headerText, "utf8") : headerText;
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, data]);
}
const weights = (dir: string): string => join(dir, "model.safetensors");
const tensorNames = (dir: string): string[] =>
  Object.keys(splitSafetensors(readFileSync(weights(dir))).header).filter((k) => k !== "__metadata__");

export const MUTATIONS: Mutation[] = [
  // ---- config.json
  {
    name: "config: a required size set to an invalid value",
    expect: "reject",
    apply: (dir, r) => editJson(join(dir, "config.json"), (c) => (c[pick(r, REQUIRED_SIZES)] = pick(r, BAD_SIZES))),
  },
  {
    name: "config: a required size removed",
    expect: "reject",
    apply: (dir, r) => editJson(join(dir, "config.json"), (c) => delete c[pick(r, REQUIRED_SIZES)]),
  },
  {
    name: "config: rms_norm_eps / rope_theta / a head count out of range",
    expect: "reject",
    apply: (dir, r) =>
      editJson(join(dir, "config.json"), (c) => {
        const which = pick(r, ["rms_norm_eps", "rope_theta", "num_key_value_heads", "head_dim"]);
        if (which === "rope_theta") (c.rope_parameters as Record<string, unknown>).rope_theta = pick(r, BAD_POSITIVE_FLOATS);
        else if (which === "rms_norm_eps") c.rms_norm_eps = pick(r, BAD_POSITIVE_FLOATS);
        else c[which] = pick(r, [-2, 0, 3, 2.5, "2"]);
      }),
  },
  {
    name: "config: unsupported hidden_act",
    expect: "reject",
    apply: (dir, r) => editJson(join(dir, "config.json"), (c) => (c.hidden_act = pick(r, ["gelu", "relu", "", "tanh"]))),
  },
  {
    name: "config: unknown architecture",
    expect: "reject",
    apply: (dir) => editJson(join(dir, "config.json"), (c) => ((c.architectures = ["FooForCausalLM"]), (c.model_type = "foo"))),
  },
  {
    name: "config: layer_types of the wrong length",
    expect: "reject",
    apply: (dir) => editJson(join(dir, "config.json"), (c) => (c.layer_types = ["full_attention"])),
  },
  {
    name: "config: JSON text truncated",
    expect: "reject",
    apply: (dir, r) => {
      const text = readFileSync(join(dir, "config.json"), "utf8");
      writeFileSync(join(dir, "config.json"), text.slice(0, Math.floor(r() * (text.length - 1))));
    },
  },
  {
    name: "config: not an object",
    expect: "reject",
    apply: (dir, r) => writeFileSync(join(dir, "config.json"), pick(r, ["null", "[]", "42", '"x"'])),
  },
  // ---- generation_config.json
  {
    name: "generation_config: eos_token_id invalid",
    expect: "reject",
    apply: (dir, r) => editJson(join(dir, "generation_config.json"), (c) => (c.eos_token_id = pick(r, [-1, 1.5, "2", [1, -3], {}]))),
  },
  // ---- model.safetensors
  {
    name: "weights: truncated",
    expect: "reject",
    apply: (dir, r) => {
      const bytes = readFileSync(weights(dir));
      writeFileSync(weights(dir), bytes.subarray(0, Math.floor(r() * (bytes.length - 1))));
    },
  },
  {
    name: "weights: trailing bytes appended",
    expect: "reject",
    apply: (dir, r) => writeFileSync(weights(dir), Buffer.concat([readFileSync(weights(dir)), Buffer.alloc(1 + Math.floor(r() * 64))])),
  },
  {
    name: "weights: header length field changed",
    expect: "reject",
    apply: (dir, r) => {
      const bytes = readFileSync(weights(dir));
      const n = bytes.readBigUInt64LE(0);
      bytes.writeBigUInt64LE(pick(r, [0n, n - 1n, n + 1n, n + 8n, 1n << 40n, (1n << 64n) - 1n]), 0);
      writeFileSync(weights(dir), bytes);
    },
  },
  {
    name: "weights: a tensor's dtype changed to an integer or unknown type",
    expect: "reject",
    apply: (dir, r) => {
      const { header, data } = splitSafetensors(readFileSync(weights(dir)));
      const f32 = Object.keys(header).filter((k) => header[k]!.dtype === "F32");
      const name = pick(r, f32);
      header[name]!.dtype = pick(r, ["I32", "U8", "constructor", "toString", "F8_E4M3", "BOOL"]);
      if (header[name]!.dtype === "U8" || header[name]!.dtype === "BOOL")
        header[name]!.shape = [header[name]!.data_offsets[1] - header[name]!.data_offsets[0]];
      writeFileSync(weights(dir), joinSafetensors(JSON.stringify(header), data));
    },
  },
  {
    name: "weights: a key repeated in the header",
    expect: "reject",
    apply: (dir, r) => {
      const { header, data } = splitSafetensors(readFileSync(weights(dir)));
      const name = pick(
        r,
        Object.keys(header).filter((k) => k !== "__metadata__"),
      );
      const text = JSON.stringify(header);
      writeFileSync(weights(dir), joinSafetensors(`${text.slice(0, -1)},${JSON.stringify(name)}:${JSON.stringify(header[name])}}`, data));
    },
  },
  {
    name: "weights: a gap before the last tensor",
    expect: "reject",
    apply: (dir) => {
      const { header, data } = splitSafetensors(readFileSync(weights(dir)));
      const last = Object.keys(header)
        .filter((k) => k !== "__metadata__")
        .sort((a, b) => header[b]!.data_offsets[1] - header[a]!.data_offsets[1])[0]!;
      header[last]!.data_offsets = [header[last]!.data_offsets[0] + 4, header[last]!.data_offsets[1] + 4];
      writeFileSync(weights(dir), joinSafetensors(JSON.stringify(header), Buffer.concat([data, Buffer.alloc(4)])));
    },
  },
  {
    name: "weights: invalid UTF-8 inside the header",
    expect: "reject",
    apply: (dir) => {
      const bytes = readFileSync(weights(dir));
      const n = Number(bytes.readBigUInt64LE(0));
      const header = Buffer.from(bytes.subarray(8, 8 + n));
      header[header.indexOf('"model') + 2] = 0xff;
      writeFileSync(weights(dir), joinSafetensors(header, bytes.subarray(8 + n)));
    },
  },
  {
    name: "weights: a tensor removed",
    expect: "reject",
    apply: (dir, r) => {
      const { header, data } = splitSafetensors(readFileSync(weights(dir)));
      const name = pick(r, tensorNames(dir));
      const [begin, end] = header[name]!.data_offsets;
      delete header[name];
      for (const e of Object.values(header))
        if (e.data_offsets && e.data_offsets[0] >= end)
          e.data_offsets = [e.data_offsets[0] - (end - begin), e.data_offsets[1] - (end - begin)];
      writeFileSync(weights(dir), joinSafetensors(JSON.stringify(header), Buffer.concat([data.subarray(0, begin), data.subarray(end)])));
    },
  },
  {
    name: "weights: a byte of the data section flipped (still a valid file)",
    expect: "any",
    apply: (dir, r) => {
      const bytes = readFileSync(weights(dir));
      const n = Number(bytes.readBigUInt64LE(0));
      const at = 8 + n + Math.floor(r() * (bytes.length - 8 - n));
      bytes[at] = Math.floor(r() * 256);
      writeFileSync(weights(dir), bytes);
    },
  },
  {
    name: "weights: a byte of the header flipped",
    expect: "any",
    apply: (dir, r) => {
      const bytes = readFileSync(weights(dir));
      const n = Number(bytes.readBigUInt64LE(0));
      bytes[8 + Math.floor(r() * n)] = Math.floor(r() * 256);
      writeFileSync(weights(dir), bytes);
    },
  },
  {
    name: "weights: replaced by a FIFO, a directory or an empty file",
    expect: "reject",
    apply: (dir, r) => {
      rmSync(weights(dir));
      const kind = pick(r, ["fifo", "dir", "empty"]);
      if (kind === "fifo") execFileSync("mkfifo", [weights(dir)]);
      else if (kind === "dir") mkdirSync(weights(dir));
      else writeFileSync(weights(dir), "");
    },
  },
  // ---- tokenizer files
  {
    name: "tokenizer_config: chat_template removed",
    expect: "reject",
    apply: (dir) => editJson(join(dir, "tokenizer_config.json"), (c) => delete c.chat_template),
  },
  {
    name: "tokenizer_config: chat_template that does not parse or render",
    expect: "reject",
    apply: (dir, r) =>
      editJson(
        join(dir, "tokenizer_config.json"),
        (c) => (c.chat_template = pick(r, ["{% for m in messages %}", "{{ raise_exception('no') }}", "{{ messages[7].content.x.y }}", 42])),
      ),
  },
  {
    name: "tokenizer: vocabulary emptied",
    expect: "reject",
    apply: (dir) =>
      editJson(
        join(dir, "tokenizer.json"),
        (t) => (((t.model as Record<string, unknown>).vocab = {}), ((t.model as Record<string, unknown>).merges = [])),
      ),
  },
  {
    name: "tokenizer: file truncated",
    expect: "reject",
    apply: (dir, r) => {
      const text = readFileSync(join(dir, "tokenizer.json"), "utf8");
      writeFileSync(join(dir, "tokenizer.json"), text.slice(0, Math.floor(r() * (text.length - 1))));
    },
  },
];
