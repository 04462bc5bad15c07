# Build description of the latsim KVM addon (node-gyp, node-addon-api, C++17).
# Linux only: it wraps /dev/kvm ioctls and a few fd syscalls. Leaves out other
# platforms; install.mjs reports the addon as unavailable where this fails.
{
  "targets": [
    {
      "target_name": "latsim_kvm",
      "sources": [
        "src/addon.cc",
        "src/common.cc",
        "src/vm.cc",
        "src/vcpu.cc",
        "src/fdio.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_ENABLE_TYPE_CHECK_ON_AS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-lpthread"]
    }
  ]
}
