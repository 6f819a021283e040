// Argument checking for the exported functions. The TypeScript wrappers validate first;
// these checks only make sure a bad call from elsewhere fails with ERR_NM_INVALID_ARGUMENT
// instead of doing something undefined.
#pragma once

#include <napi.h>

#include <cstdint>
#include <optional>
#include <string>

namespace nm {

class Args {
 public:
  // Throws unless at least `count` arguments were passed.
  Args(const Napi::CallbackInfo& info, const char* fn, size_t count);

  Napi::Env env() const { return info_.Env(); }
  const char* fn() const { return fn_; }

  // A file descriptor: an integer in [0, INT32_MAX].
  int Fd(size_t i, const char* name) const;
  // An integer in [min, max].
  int64_t Int(size_t i, const char* name, int64_t min, int64_t max) const;
  uint32_t U32(size_t i, const char* name) const { return static_cast<uint32_t>(Int(i, name, 0, UINT32_MAX)); }
  bool Bool(size_t i, const char* name) const;
  // A non-empty string without NUL bytes.
  std::string String(size_t i, const char* name) const;
  Napi::Buffer<uint8_t> Buffer(size_t i, const char* name) const;
  Napi::Object Object(size_t i, const char* name) const;
  bool IsNullish(size_t i) const;

  // Optional properties of an options object: std::nullopt when absent or undefined.
  std::optional<int64_t> OptInt(const Napi::Object& obj, const char* key, int64_t min, int64_t max) const;
  std::optional<bool> OptBool(const Napi::Object& obj, const char* key) const;
  std::optional<std::string> OptString(const Napi::Object& obj, const char* key) const;

  [[noreturn]] void Invalid(const std::string& message) const;

 private:
  const Napi::CallbackInfo& info_;
  const char* fn_;
};

}  // namespace nm
