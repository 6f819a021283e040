// BPF objects through libbpf: open (with a pin root for LIBBPF_PIN_BY_NAME maps), set
// const volatile globals, load, hand out dup()ed program and map fds, close.
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/magic.h>
#include <string.h>
#include <sys/vfs.h>

#include <cstring>
#include <string>
#include <vector>

#include "addon_state.h"
#include "args.h"
#include "bpf_fd.h"
#include "errors.h"
#include "libbpf_log.h"
#include "register.h"

namespace nm {

namespace {

constexpr size_t kLogTailLines = 40;

std::string WithLog(const LibbpfLogCapture& log, const std::string& prefix) {
  std::string tail = log.Tail(kLogTailLines);
  if (tail.empty()) return std::string();
  return prefix + "\n" + tail;
}

uint32_t Handle(const Args& args) { return static_cast<uint32_t>(args.Int(0, "handle", 1, INT32_MAX)); }

// Where a global variable lives: the datasec's internal map and the byte range.
struct GlobalLocation {
  std::string section;
  uint32_t offset = 0;
  uint32_t size = 0;
};

// Sections holding settable globals; .maps, license, .kconfig and .ksyms are not.
bool IsGlobalSection(const char* section) {
  if (section == nullptr) return false;
  std::string s(section);
  auto is = [&s](const std::string& base) { return s == base || s.rfind(base + ".", 0) == 0; };
  return is(".rodata") || is(".data") || is(".bss");
}

// Finds `name` among the VARs of every DATASEC (.rodata, .data, .bss, .rodata.*, ...).
bool FindGlobal(const btf* btf, const std::string& name, GlobalLocation* out, std::string* available) {
  int var_id = btf__find_by_name_kind(btf, name.c_str(), BTF_KIND_VAR);
  uint32_t count = btf__type_cnt(btf);
  bool found = false;
  for (uint32_t id = 1; id < count; id++) {
    const btf_type* t = btf__type_by_id(btf, id);
    if (t == nullptr || !btf_is_datasec(t)) continue;
    const char* section = btf__name_by_offset(btf, t->name_off);
    if (!IsGlobalSection(section)) continue;
    const btf_var_secinfo* vsi = btf_var_secinfos(t);
    for (uint16_t i = 0; i < btf_vlen(t); i++, vsi++) {
      const btf_type* var = btf__type_by_id(btf, vsi->type);
      const char* var_name = var ? btf__name_by_offset(btf, var->name_off) : nullptr;
      if (var_name != nullptr && btf_is_var(var)) {
        if (!available->empty()) *available += ", ";
        *available += std::string(var_name) + " (" + (section ? section : "?") + ", " +
                      std::to_string(vsi->size) + " bytes)";
      }
      if (var_id > 0 && !found && static_cast<int>(vsi->type) == var_id) {
        out->section = section ? section : "";
        out->offset = vsi->offset;
        out->size = vsi->size;
        found = true;
      }
    }
  }
  return found;
}

std::string ProgramNames(bpf_object* obj) {
  std::string out;
  bpf_program* prog;
  bpf_object__for_each_program(prog, obj) {
    if (!out.empty()) out += ", ";
    out += bpf_program__name(prog);
  }
  return out.empty() ? "none" : out;
}

std::string MapNames(bpf_object* obj) {
  std::string out;
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    if (!out.empty()) out += ", ";
    out += bpf_map__name(map);
  }
  return out.empty() ? "none" : out;
}

ObjectEntry& LoadedEntry(const Args& args, uint32_t handle) {
  ObjectEntry& entry = State(args.env()).Get(args.env(), args.fn(), handle);
  if (entry.stage != ObjectStage::kLoaded) {
    ThrowCode(args.env(), args.fn(), "ERR_NM_NOT_LOADED",
              "BPF object '" + entry.path + "' is not loaded" +
                  (entry.stage == ObjectStage::kLoadFailed ? " (its load failed; open it again)" : "; call objectLoad first"),
              std::string(), entry.path);
  }
  return entry;
}

Napi::Value ObjectOpen(const Napi::CallbackInfo& info) {
  Args args(info, "objectOpen", 2);
  Napi::Env env = args.env();
  std::string path = args.String(0, "path");
  std::string pin_root = args.String(1, "pinRoot");

  struct statfs sfs;
  if (statfs(pin_root.c_str(), &sfs) != 0) {
    ThrowErrno(env, args.fn(), errno, "statfs", pin_root, "the pin root must be an existing directory on bpffs");
  }
  if (static_cast<unsigned long>(sfs.f_type) != BPF_FS_MAGIC) {
    ThrowCode(env, args.fn(), "ERR_NM_NOT_BPFFS",
              "pin root '" + pin_root + "' is not on a bpf filesystem; mount one (mount -t bpf bpf /sys/fs/bpf)",
              "statfs", pin_root);
  }

  bpf_object_open_opts opts;
  std::memset(&opts, 0, sizeof(opts));
  opts.sz = sizeof(opts);
  opts.pin_root_path = pin_root.c_str();

  LibbpfLogCapture log;
  bpf_object* obj = bpf_object__open_file(path.c_str(), &opts);
  if (obj == nullptr) {
    int err = errno ? errno : EINVAL;
    ThrowErrno(env, args.fn(), err, "bpf_object__open_file", path, WithLog(log, "libbpf log:"));
  }
  return Napi::Number::New(env, State(env).Add(obj, path));
}

Napi::Value ObjectSetGlobal(const Napi::CallbackInfo& info) {
  Args args(info, "objectSetGlobal", 3);
  Napi::Env env = args.env();
  uint32_t handle = Handle(args);
  std::string name = args.String(1, "name");
  Napi::Buffer<uint8_t> value = args.Buffer(2, "value");
  ObjectEntry& entry = State(env).Get(env, args.fn(), handle);
  if (entry.stage != ObjectStage::kOpened) {
    ThrowCode(env, args.fn(), "ERR_NM_ALREADY_LOADED",
              "globals of '" + entry.path + "' can only be set before objectLoad", std::string(), entry.path);
  }
  const btf* btf = bpf_object__btf(entry.obj);
  if (btf == nullptr) {
    ThrowCode(env, args.fn(), "ERR_NM_NO_BTF",
              "BPF object '" + entry.path + "' has no BTF; compile it with clang -g", std::string(), entry.path);
  }
  GlobalLocation loc;
  std::string available;
  if (!FindGlobal(btf, name, &loc, &available)) {
    ThrowCode(env, args.fn(), "ERR_NM_GLOBAL_NOT_FOUND",
              "BPF object '" + entry.path + "' has no global variable '" + name + "' (its globals: " +
                  (available.empty() ? "none" : available) + ")",
              std::string(), entry.path);
  }
  if (value.Length() != loc.size) {
    ThrowCode(env, args.fn(), "ERR_NM_GLOBAL_SIZE",
              "global '" + name + "' in " + loc.section + " is " + std::to_string(loc.size) +
                  " bytes, but the value has " + std::to_string(value.Length()),
              std::string(), entry.path);
  }
  bpf_map* map = bpf_object__find_map_by_name(entry.obj, loc.section.c_str());
  if (map == nullptr) {
    ThrowCode(env, args.fn(), "ERR_NM_GLOBAL_NOT_FOUND",
              "no internal map for section " + loc.section + " in '" + entry.path + "'", std::string(), entry.path);
  }
  size_t size = 0;
  const void* initial = bpf_map__initial_value(map, &size);
  if (initial == nullptr || static_cast<size_t>(loc.offset) + loc.size > size) {
    ThrowCode(env, args.fn(), "ERR_NM_GLOBAL_NOT_FOUND",
              "section " + loc.section + " of '" + entry.path + "' has no initial value covering '" + name + "'",
              std::string(), entry.path);
  }
  std::vector<uint8_t> data(static_cast<const uint8_t*>(initial), static_cast<const uint8_t*>(initial) + size);
  std::memcpy(data.data() + loc.offset, value.Data(), loc.size);
  int err = bpf_map__set_initial_value(map, data.data(), data.size());
  if (err != 0) ThrowErrno(env, args.fn(), err, "bpf_map__set_initial_value", entry.path, "global '" + name + "'");
  return env.Undefined();
}

Napi::Value ObjectLoad(const Napi::CallbackInfo& info) {
  Args args(info, "objectLoad", 1);
  Napi::Env env = args.env();
  ObjectEntry& entry = State(env).Get(env, args.fn(), Handle(args));
  if (entry.stage != ObjectStage::kOpened) {
    ThrowCode(env, args.fn(), "ERR_NM_ALREADY_LOADED",
              "BPF object '" + entry.path + "' was loaded already" +
                  (entry.stage == ObjectStage::kLoadFailed ? " and failed; open it again" : ""),
              std::string(), entry.path);
  }
  LibbpfLogCapture log;
  int err = bpf_object__load(entry.obj);
  if (err != 0) {
    entry.stage = ObjectStage::kLoadFailed;
    ThrowErrno(env, args.fn(), err, "bpf_object__load", entry.path,
               WithLog(log, "last libbpf/verifier log lines:"));
  }
  entry.stage = ObjectStage::kLoaded;
  return env.Undefined();
}

Napi::Value ObjectProgramFd(const Napi::CallbackInfo& info) {
  Args args(info, "objectProgramFd", 2);
  Napi::Env env = args.env();
  uint32_t handle = Handle(args);
  std::string name = args.String(1, "programName");
  ObjectEntry& entry = LoadedEntry(args, handle);
  bpf_program* prog = bpf_object__find_program_by_name(entry.obj, name.c_str());
  if (prog == nullptr) {
    ThrowCode(env, args.fn(), "ERR_NM_PROGRAM_NOT_FOUND",
              "BPF object '" + entry.path + "' has no program '" + name + "' (its programs: " + ProgramNames(entry.obj) + ")",
              std::string(), entry.path);
  }
  int fd = bpf_program__fd(prog);
  if (fd < 0) {
    ThrowCode(env, args.fn(), "ERR_NM_NOT_LOADED",
              "program '" + name + "' of '" + entry.path + "' has no fd (autoload disabled?)", std::string(), entry.path);
  }
  return Napi::Number::New(env, DupCloexec(env, args.fn(), fd));
}

Napi::Value ObjectMapFd(const Napi::CallbackInfo& info) {
  Args args(info, "objectMapFd", 2);
  Napi::Env env = args.env();
  uint32_t handle = Handle(args);
  std::string name = args.String(1, "mapName");
  ObjectEntry& entry = LoadedEntry(args, handle);
  bpf_map* map = bpf_object__find_map_by_name(entry.obj, name.c_str());
  if (map == nullptr) {
    ThrowCode(env, args.fn(), "ERR_NM_MAP_NOT_FOUND",
              "BPF object '" + entry.path + "' has no map '" + name + "' (its maps: " + MapNames(entry.obj) + ")",
              std::string(), entry.path);
  }
  int fd = bpf_map__fd(map);
  if (fd < 0) {
    ThrowCode(env, args.fn(), "ERR_NM_NOT_LOADED", "map '" + name + "' of '" + entry.path + "' was not created",
              std::string(), entry.path);
  }
  return Napi::Number::New(env, DupCloexec(env, args.fn(), fd));
}

Napi::Value ObjectClose(const Napi::CallbackInfo& info) {
  Args args(info, "objectClose", 1);
  State(args.env()).Close(args.env(), args.fn(), Handle(args));
  return args.env().Undefined();
}

}  // namespace

void RegisterBpfObject(Napi::Env env, Napi::Object exports) {
  exports.Set("objectOpen", Napi::Function::New(env, ObjectOpen, "objectOpen"));
  exports.Set("objectSetGlobal", Napi::Function::New(env, ObjectSetGlobal, "objectSetGlobal"));
  exports.Set("objectLoad", Napi::Function::New(env, ObjectLoad, "objectLoad"));
  exports.Set("objectProgramFd", Napi::Function::New(env, ObjectProgramFd, "objectProgramFd"));
  exports.Set("objectMapFd", Napi::Function::New(env, ObjectMapFd, "objectMapFd"));
  exports.Set("objectClose", Napi::Function::New(env, ObjectClose, "objectClose"));
}

}  // namespace nm
