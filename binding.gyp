{
  "targets": [
    {
      "target_name": "nodemesh_native",
      "sources": [
        "native/addon.cc",
        "native/addon_state.cc",
        "native/args.cc",
        "native/attach_types.cc",
        "native/bpf_fd.cc",
        "native/bpf_link.cc",
        "native/bpf_map.cc",
        "native/bpf_object.cc",
        "native/bpf_pin.cc",
        "native/cgroup.cc",
        "native/errors.cc",
        "native/fd_channel.cc",
        "native/libbpf_log.cc",
        "native/netns.cc",
        "native/netns_guard.cc",
        "native/netns_socket.cc",
        "native/probe.cc",
        "native/sockaddr.cc",
        "native/sockopt.cc"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      "defines": [ "NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "_GNU_SOURCE" ],
      "cflags!": [ "-fno-exceptions" ],
      "cflags_cc!": [ "-fno-exceptions" ],
      "cflags_cc": [ "-std=gnu++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers" ],
      "libraries": [ "-lbpf", "-lelf", "-lz" ]
    }
  ]
}
