#!/usr/bin/env node
// The one place that knows where libtorch is. Order: $LIBTORCH (a libtorch root), a python3 whose
// `torch` imports ($LIBTORCH_USE_PYTORCH=1 forces it; $PYTHON picks the interpreter), then the
// system install (Debian's libtorch-dev). Used by CMakeLists.txt (cmake-js) and binding.gyp alike.
//
//   node cmake/find-libtorch.mjs           -> JSON description
//   node cmake/find-libtorch.mjs FIELD     -> one field (lists joined by ';' or ' ' with --sep=' ')
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, realpathSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const HELP = `emlab could not find libtorch. Do one of:
  - Debian/Ubuntu (CPU): apt-get install -y libtorch-dev libopenblas0-pthread
  - set LIBTORCH=/path/to/libtorch (an unpacked libtorch root with include/, lib/, share/cmake/Torch)
  - make 'python3 -c "import torch"' work (pip install torch; CUDA builds included), or set PYTHON
    to such an interpreter; LIBTORCH_USE_PYTORCH=1 insists on it.`;

/** Description of one libtorch install, from its Torch CMake package directory. */
function describe(source, torchDir, extra = {}) {
  const configPath = join(torchDir, "TorchConfig.cmake");
  if (!existsSync(configPath)) return null;
  const config = readFileSync(configPath, "utf8");
  const versionFile = join(torchDir, "TorchConfigVersion.cmake");
  const version = existsSync(versionFile) ? (readFileSync(versionFile, "utf8").match(/PACKAGE_VERSION "([^"]+)"/)?.[1] ?? "") : "";
  // The install prefix holds include/torch: three levels above share/cmake/Torch (pip, libtorch zips),
  // four above lib/<triplet>/cmake/Torch (Debian).
  const prefixes = [resolve(torchDir, "../../.."), resolve(torchDir, "../../../..")];
  const prefix = prefixes.find((dir) => existsSync(join(dir, "include/torch/csrc"))) ?? prefixes[1];
  const libCandidates = [join(prefix, "lib"), resolve(torchDir, "../.."), ...(extra.libDirs ?? [])];
  const libDir = libCandidates.find((dir) => existsSync(join(dir, "libtorch.so")) || existsSync(join(dir, "libtorch_cpu.so")));
  if (!libDir) return null;
  const abiMatch = config.match(/_GLIBCXX_USE_CXX11_ABI=([01])/);
  const cxx11Abi = extra.cxx11Abi ?? (abiMatch ? abiMatch[1] : "1");
  const has = (name) => existsSync(join(libDir, `lib${name}.so`));
  const cuda = has("torch_cuda");
  const libraries = ["torch", "torch_cpu", "c10", ...(cuda ? ["torch_cuda", "c10_cuda"] : [])].filter(has);
  const cudaIncludes = cuda ? cudaIncludeDirs(prefix) : [];
  return {
    source,
    torchDir,
    linkFlags: libraries.map((name) => `-l${name}`),
    cudaDefine: cuda ? "EMLAB_WITH_CUDA" : "EMLAB_CPU_ONLY",
    prefix,
    version,
    includeDirs: [join(prefix, "include"), join(prefix, "include/torch/csrc/api/include"), ...cudaIncludes],
    libDir,
    libraries,
    cxx11Abi,
    cuda,
    cudaIncludeDirs: cudaIncludes,
  };
}

/**
 * Folders with the CUDA runtime headers (cuda_runtime_api.h) that libtorch's c10/cuda headers include.
 * emlab compiles no kernels, so these headers (no nvcc) are all a CUDA build needs: $CUDA_HOME, a
 * system toolkit, or PyPI's NVIDIA packages beside a pip torch (site-packages/nvidia/<pkg>/include).
 */
function cudaIncludeDirs(prefix) {
  const roots = [process.env.CUDA_HOME, process.env.CUDA_PATH, "/usr/local/cuda"].filter(Boolean).map((root) => join(root, "include"));
  for (const nvidia of [resolve(prefix, "../nvidia"), resolve(prefix, "nvidia")]) {
    try {
      for (const entry of readdirSync(nvidia)) roots.push(join(nvidia, entry, "include"));
    } catch {
      // no pip NVIDIA packages here
    }
  }
  const withRuntime = roots.filter((dir) => existsSync(join(dir, "cuda_runtime_api.h")));
  return withRuntime.length > 0 ? [withRuntime[0]] : [];
}

function fromEnvRoot() {
  const root = process.env.LIBTORCH;
  if (!root) return null;
  const found = describe("LIBTORCH", join(resolve(root), "share/cmake/Torch"));
  if (!found) throw new Error(`LIBTORCH=${root} is not a libtorch root (no share/cmake/Torch/TorchConfig.cmake or lib/libtorch.so)`);
  return found;
}

function fromPython() {
  const python = process.env.PYTHON || "python3";
  const script =
    "import json,os,torch,torch.utils;" +
    "print(json.dumps({'cmake':torch.utils.cmake_prefix_path,'root':os.path.dirname(torch.__file__)," +
    "'abi':int(torch._C._GLIBCXX_USE_CXX11_ABI),'version':torch.__version__}))";
  let info;
  try {
    info = JSON.parse(execFileSync(python, ["-c", script], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }));
  } catch {
    return null;
  }
  const found = describe(`python3 torch ${info.version} (${python})`, join(info.cmake, "Torch"), {
    cxx11Abi: String(info.abi),
    libDirs: [join(info.root, "lib")],
  });
  return found;
}

function fromSystem() {
  const candidates = ["/usr/local/lib/cmake/Torch", "/usr/lib/cmake/Torch", "/usr/share/cmake/Torch"];
  try {
    for (const entry of readdirSync("/usr/lib")) candidates.push(join("/usr/lib", entry, "cmake/Torch"));
  } catch {
    // no /usr/lib: nothing to add
  }
  for (const dir of candidates) {
    const found = describe("system", dir);
    if (found) return found;
  }
  return null;
}

export function findLibtorch() {
  const forcePython = process.env.LIBTORCH_USE_PYTORCH === "1";
  if (forcePython) {
    const found = fromPython();
    if (!found) throw new Error(`LIBTORCH_USE_PYTORCH=1 but '${process.env.PYTHON || "python3"} -c "import torch"' failed or has no CMake config.\n${HELP}`);
    return found;
  }
  const found = fromEnvRoot() ?? fromPython() ?? fromSystem();
  if (!found) throw new Error(HELP);
  return found;
}

// Run as a script (also through a symlinked path, which import.meta.url has already resolved).
if (process.argv[1] && realpathSync(resolve(process.argv[1])) === fileURLToPath(import.meta.url)) {
  try {
    const found = findLibtorch();
    const field = process.argv[2];
    const sep = process.argv.find((a) => a.startsWith("--sep="))?.slice(6) ?? ";";
    if (!field) {
      process.stdout.write(JSON.stringify(found, null, 2) + "\n");
    } else {
      const value = found[field];
      process.stdout.write(Array.isArray(value) ? value.join(sep) : String(value));
    }
  } catch (error) {
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  }
}
