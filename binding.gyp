# node-gyp build of the same addon as CMakeLists.txt (same sources, same libtorch discovery through
# cmake/find-libtorch.mjs). cmake-js is the main build (`npm install`); use `npm run build:native:gyp`.
# -fopenmp is a compile flag only: at::parallel_for then runs on libtorch's OpenMP threads (see CMakeLists.txt).
{
  "targets": [
    {
      "target_name": "emlab",
      "sources": [
        "<!@(node -p \"require('fs').readdirSync('native/src').filter(f => f.endsWith('.cc')).map(f => 'native/src/' + f).join(' ')\")"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node cmake/find-libtorch.mjs includeDirs --sep=' ')"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "_GLIBCXX_USE_CXX11_ABI=<!(node cmake/find-libtorch.mjs cxx11Abi)",
        "<!(node cmake/find-libtorch.mjs cudaDefine)"
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++14"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O3", "-fopenmp", "-Wno-unused-parameter"],
      "ldflags": [
        "-Wl,--no-as-needed",
        "-Wl,-z,now",
        "-Wl,-rpath,<!(node cmake/find-libtorch.mjs libDir)"
      ],
      "libraries": [
        "-L<!(node cmake/find-libtorch.mjs libDir)",
        "<!@(node cmake/find-libtorch.mjs linkFlags --sep=' ')"
      ]
    }
  ]
}
