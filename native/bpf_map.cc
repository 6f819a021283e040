// BPF map access by fd: info, lookup, update, delete, key iteration. Sizes come from the
// kernel (bpf_obj_get_info_by_fd) on every call, never from a cache: fds get reused.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>

#include <cstring>
#include <string>
#include <vector>

#include "args.h"
#include "bpf_fd.h"
#include "errors.h"
#include "register.h"

namespace nm {

namespace {

struct MapMeta {
  bpf_map_info info;
  bool per_cpu = false;
  bool holds_sockets = false;
  size_t value_buffer_size = 0;  // what lookup/update exchange with the kernel
  size_t slot_size = 0;          // per-CPU: one CPU's slot (value size rounded up to 8)
  int cpus = 1;
};

bool IsPerCpu(uint32_t type) {
  return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
         type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

bool HoldsSockets(uint32_t type) {
  return type == BPF_MAP_TYPE_SOCKMAP || type == BPF_MAP_TYPE_SOCKHASH ||
         type == BPF_MAP_TYPE_REUSEPORT_SOCKARRAY;
}

int PossibleCpus(Napi::Env env, const char* fn) {
  int n = libbpf_num_possible_cpus();
  if (n < 0) ThrowErrno(env, fn, n, "libbpf_num_possible_cpus", "/sys/devices/system/cpu/possible");
  return n;
}

MapMeta GetMeta(const Args& args, int fd) {
  ExpectBpfFd(args.env(), args.fn(), fd, BpfFdKind::kMap);
  MapMeta meta;
  std::memset(&meta.info, 0, sizeof(meta.info));
  uint32_t len = sizeof(meta.info);
  int err = bpf_obj_get_info_by_fd(fd, &meta.info, &len);
  if (err < 0) ThrowErrno(args.env(), args.fn(), err, "bpf_obj_get_info_by_fd");
  meta.per_cpu = IsPerCpu(meta.info.type);
  meta.holds_sockets = HoldsSockets(meta.info.type);
  if (meta.per_cpu) {
    meta.cpus = PossibleCpus(args.env(), args.fn());
    meta.slot_size = (static_cast<size_t>(meta.info.value_size) + 7) / 8 * 8;
    meta.value_buffer_size = meta.slot_size * static_cast<size_t>(meta.cpus);
  } else {
    meta.slot_size = meta.info.value_size;
    meta.value_buffer_size = meta.info.value_size;
  }
  return meta;
}

const void* KeyPointer(const Args& args, const MapMeta& meta, const Napi::Buffer<uint8_t>& key) {
  if (key.Length() != meta.info.key_size) {
    args.Invalid("key has " + std::to_string(key.Length()) + " bytes, map '" + meta.info.name + "' keys have " +
                 std::to_string(meta.info.key_size));
  }
  // A zero-size key (queue/stack maps) still needs a valid pointer.
  static const uint8_t empty = 0;
  return key.Length() == 0 ? static_cast<const void*>(&empty) : key.Data();
}

Napi::Value MapInfo(const Napi::CallbackInfo& info) {
  Args args(info, "mapInfo", 1);
  Napi::Env env = args.env();
  MapMeta meta = GetMeta(args, args.Fd(0, "mapFd"));
  Napi::Object out = Napi::Object::New(env);
  out.Set("id", Napi::Number::New(env, meta.info.id));
  out.Set("name", Napi::String::New(env, std::string(meta.info.name, strnlen(meta.info.name, sizeof(meta.info.name)))));
  out.Set("type", Napi::Number::New(env, meta.info.type));
  out.Set("keySize", Napi::Number::New(env, meta.info.key_size));
  out.Set("valueSize", Napi::Number::New(env, meta.info.value_size));
  out.Set("maxEntries", Napi::Number::New(env, meta.info.max_entries));
  return out;
}

Napi::Value MapLookup(const Napi::CallbackInfo& info) {
  Args args(info, "mapLookup", 2);
  Napi::Env env = args.env();
  int fd = args.Fd(0, "mapFd");
  Napi::Buffer<uint8_t> key = args.Buffer(1, "key");
  MapMeta meta = GetMeta(args, fd);
  const void* key_ptr = KeyPointer(args, meta, key);
  std::vector<uint8_t> value(meta.value_buffer_size == 0 ? 1 : meta.value_buffer_size);
  int err = bpf_map_lookup_elem(fd, key_ptr, value.data());
  if (err == -ENOENT) return env.Null();
  if (err < 0) ThrowErrno(env, args.fn(), err, "bpf_map_lookup_elem", std::string(), std::string("map '") + meta.info.name + "'");
  return Napi::Buffer<uint8_t>::Copy(env, value.data(), meta.value_buffer_size);
}

Napi::Value MapUpdate(const Napi::CallbackInfo& info) {
  Args args(info, "mapUpdate", 4);
  Napi::Env env = args.env();
  int fd = args.Fd(0, "mapFd");
  Napi::Buffer<uint8_t> key = args.Buffer(1, "key");
  Napi::Buffer<uint8_t> value = args.Buffer(2, "value");
  uint64_t flags = static_cast<uint64_t>(args.Int(3, "flags", 0, 2));
  MapMeta meta = GetMeta(args, fd);
  const void* key_ptr = KeyPointer(args, meta, key);

  std::vector<uint8_t> buf(meta.value_buffer_size == 0 ? 1 : meta.value_buffer_size, 0);
  if (meta.holds_sockets) {
    // The value is a socket fd, 4 or 8 bytes in host byte order; the kernel wants it in
    // the map's own value size.
    uint64_t sock_fd;
    if (value.Length() == 4) {
      uint32_t v;
      std::memcpy(&v, value.Data(), 4);
      sock_fd = v;
    } else if (value.Length() == 8) {
      std::memcpy(&sock_fd, value.Data(), 8);
    } else {
      args.Invalid("a socket map value is a socket fd in a 4- or 8-byte Buffer, got " + std::to_string(value.Length()) +
                   " bytes");
    }
    if (sock_fd > INT32_MAX) args.Invalid("socket fd " + std::to_string(sock_fd) + " is out of range");
    if (meta.info.value_size == 4) {
      uint32_t v = static_cast<uint32_t>(sock_fd);
      std::memcpy(buf.data(), &v, 4);
    } else if (meta.info.value_size == 8) {
      std::memcpy(buf.data(), &sock_fd, 8);
    } else {
      args.Invalid("socket map '" + std::string(meta.info.name) + "' has an unexpected value size " +
                   std::to_string(meta.info.value_size));
    }
  } else if (meta.per_cpu) {
    // Either every CPU's slot concatenated, or one value that is copied to every CPU.
    if (value.Length() == meta.value_buffer_size) {
      std::memcpy(buf.data(), value.Data(), value.Length());
    } else if (value.Length() == meta.info.value_size) {
      for (int cpu = 0; cpu < meta.cpus; cpu++) {
        std::memcpy(buf.data() + static_cast<size_t>(cpu) * meta.slot_size, value.Data(), value.Length());
      }
    } else {
      args.Invalid("per-CPU map '" + std::string(meta.info.name) + "' takes a value of " +
                   std::to_string(meta.info.value_size) + " bytes (copied to every CPU) or " +
                   std::to_string(meta.value_buffer_size) + " bytes (" + std::to_string(meta.cpus) + " CPUs x " +
                   std::to_string(meta.slot_size) + "), got " + std::to_string(value.Length()));
    }
  } else {
    if (value.Length() != meta.info.value_size) {
      args.Invalid("value has " + std::to_string(value.Length()) + " bytes, map '" + meta.info.name + "' values have " +
                   std::to_string(meta.info.value_size));
    }
    if (value.Length() > 0) std::memcpy(buf.data(), value.Data(), value.Length());
  }
  int err = bpf_map_update_elem(fd, key_ptr, buf.data(), flags);
  if (err < 0) ThrowErrno(env, args.fn(), err, "bpf_map_update_elem", std::string(), std::string("map '") + meta.info.name + "'");
  return env.Undefined();
}

Napi::Value MapDelete(const Napi::CallbackInfo& info) {
  Args args(info, "mapDelete", 2);
  Napi::Env env = args.env();
  int fd = args.Fd(0, "mapFd");
  Napi::Buffer<uint8_t> key = args.Buffer(1, "key");
  MapMeta meta = GetMeta(args, fd);
  int err = bpf_map_delete_elem(fd, KeyPointer(args, meta, key));
  if (err == -ENOENT) return Napi::Boolean::New(env, false);
  if (err < 0) ThrowErrno(env, args.fn(), err, "bpf_map_delete_elem", std::string(), std::string("map '") + meta.info.name + "'");
  return Napi::Boolean::New(env, true);
}

Napi::Value MapNextKey(const Napi::CallbackInfo& info) {
  Args args(info, "mapNextKey", 2);
  Napi::Env env = args.env();
  int fd = args.Fd(0, "mapFd");
  MapMeta meta = GetMeta(args, fd);
  const void* key_ptr = nullptr;
  if (!args.IsNullish(1)) key_ptr = KeyPointer(args, meta, args.Buffer(1, "key"));
  std::vector<uint8_t> next(meta.info.key_size == 0 ? 1 : meta.info.key_size);
  int err = bpf_map_get_next_key(fd, key_ptr, next.data());
  if (err == -ENOENT) return env.Null();
  if (err < 0) ThrowErrno(env, args.fn(), err, "bpf_map_get_next_key", std::string(), std::string("map '") + meta.info.name + "'");
  return Napi::Buffer<uint8_t>::Copy(env, next.data(), meta.info.key_size);
}

Napi::Value PossibleCpusFn(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), PossibleCpus(info.Env(), "possibleCpus"));
}

}  // namespace

void RegisterBpfMap(Napi::Env env, Napi::Object exports) {
  exports.Set("mapInfo", Napi::Function::New(env, MapInfo, "mapInfo"));
  exports.Set("mapLookup", Napi::Function::New(env, MapLookup, "mapLookup"));
  exports.Set("mapUpdate", Napi::Function::New(env, MapUpdate, "mapUpdate"));
  exports.Set("mapDelete", Napi::Function::New(env, MapDelete, "mapDelete"));
  exports.Set("mapNextKey", Napi::Function::New(env, MapNextKey, "mapNextKey"));
  exports.Set("possibleCpus", Napi::Function::New(env, PossibleCpusFn, "possibleCpus"));
}

}  // namespace nm
