{
  "targets": [
    {
      "target_name": "dpr",
      "sources": [
        "native/addon.cc",
        "native/checksum.cc",
        "native/engine.cc",
        "native/engine_icmp.cc",
        "native/icmp.cc",
        "native/flow_table.cc",
        "native/flow_track.cc",
        "native/load_choice.cc",
        "native/load_decider.cc",
        "native/own_load.cc",
        "native/packet.cc",
        "native/nfq_socket.cc",
        "native/queue.cc",
        "native/ipset_writer.cc",
        "native/siphash.cc",
        "native/sock_diag.cc",
        "native/neighbours.cc",
        "native/sd_notify.cc",
        "native/sha256.cc",
        "native/heartbeat_wire.cc",
        "native/peer_link.cc",
        "native/peer_link_binding.cc",
        "native/queue_binding.cc",
        "native/engine_binding.cc",
        "native/binding_util.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++14", "-O3"],
      "cflags_cc": [
        "-std=c++17", "-O2", "-Wall", "-Wextra", "-fexceptions",
        "<!@(pkg-config --cflags libnetfilter_queue libmnl)"
      ],
      "libraries": ["<!@(pkg-config --libs libnetfilter_queue libmnl)"]
    }
  ]
}
