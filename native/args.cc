#include "args.h"

#include <cmath>
#include <cstring>

#include "errors.h"

namespace nm {

namespace {

std::string Describe(const Napi::Value& v) {
  switch (v.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "a boolean";
    case napi_number: return "the number " + v.ToString().Utf8Value();
    case napi_string: return "a string";
    case napi_symbol: return "a symbol";
    case napi_object: return "an object";
    case napi_function: return "a function";
    case napi_external: return "an external";
    case napi_bigint: return "a bigint";
  }
  return "an unknown value";
}

bool IsInteger(const Napi::Value& v, double* out) {
  if (!v.IsNumber()) return false;
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::trunc(d) != d) return false;
  *out = d;
  return true;
}

}  // namespace

Args::Args(const Napi::CallbackInfo& info, const char* fn, size_t count) : info_(info), fn_(fn) {
  if (info.Length() < count) {
    Invalid("expected " + std::to_string(count) + " argument(s), got " + std::to_string(info.Length()));
  }
}

void Args::Invalid(const std::string& message) const { ThrowInvalidArgument(env(), fn_, message); }

int Args::Fd(size_t i, const char* name) const {
  double d;
  if (!IsInteger(info_[i], &d) || d < 0 || d > INT32_MAX) {
    Invalid(std::string(name) + " must be a file descriptor (an integer >= 0), got " + Describe(info_[i]));
  }
  return static_cast<int>(d);
}

int64_t Args::Int(size_t i, const char* name, int64_t min, int64_t max) const {
  double d;
  if (!IsInteger(info_[i], &d) || d < static_cast<double>(min) || d > static_cast<double>(max)) {
    Invalid(std::string(name) + " must be an integer in [" + std::to_string(min) + ", " + std::to_string(max) +
            "], got " + Describe(info_[i]));
  }
  return static_cast<int64_t>(d);
}

bool Args::Bool(size_t i, const char* name) const {
  if (!info_[i].IsBoolean()) Invalid(std::string(name) + " must be a boolean, got " + Describe(info_[i]));
  return info_[i].As<Napi::Boolean>().Value();
}

std::string Args::String(size_t i, const char* name) const {
  if (!info_[i].IsString()) Invalid(std::string(name) + " must be a string, got " + Describe(info_[i]));
  std::string s = info_[i].As<Napi::String>().Utf8Value();
  if (s.empty()) Invalid(std::string(name) + " must not be empty");
  if (s.find('\0') != std::string::npos) Invalid(std::string(name) + " must not contain NUL bytes");
  return s;
}

Napi::Buffer<uint8_t> Args::Buffer(size_t i, const char* name) const {
  if (!info_[i].IsBuffer()) Invalid(std::string(name) + " must be a Buffer, got " + Describe(info_[i]));
  return info_[i].As<Napi::Buffer<uint8_t>>();
}

Napi::Object Args::Object(size_t i, const char* name) const {
  if (!info_[i].IsObject() || info_[i].IsFunction()) {
    Invalid(std::string(name) + " must be an object, got " + Describe(info_[i]));
  }
  return info_[i].As<Napi::Object>();
}

bool Args::IsNullish(size_t i) const { return info_[i].IsNull() || info_[i].IsUndefined(); }

std::optional<int64_t> Args::OptInt(const Napi::Object& obj, const char* key, int64_t min, int64_t max) const {
  Napi::Value v = obj.Get(key);
  if (v.IsUndefined()) return std::nullopt;
  double d;
  if (!IsInteger(v, &d) || d < static_cast<double>(min) || d > static_cast<double>(max)) {
    Invalid(std::string("options.") + key + " must be an integer in [" + std::to_string(min) + ", " +
            std::to_string(max) + "], got " + Describe(v));
  }
  return static_cast<int64_t>(d);
}

std::optional<bool> Args::OptBool(const Napi::Object& obj, const char* key) const {
  Napi::Value v = obj.Get(key);
  if (v.IsUndefined()) return std::nullopt;
  if (!v.IsBoolean()) Invalid(std::string("options.") + key + " must be a boolean, got " + Describe(v));
  return v.As<Napi::Boolean>().Value();
}

std::optional<std::string> Args::OptString(const Napi::Object& obj, const char* key) const {
  Napi::Value v = obj.Get(key);
  if (v.IsUndefined()) return std::nullopt;
  if (!v.IsString()) Invalid(std::string("options.") + key + " must be a string, got " + Describe(v));
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos) Invalid(std::string("options.") + key + " must not contain NUL bytes");
  return s;
}

}  // namespace nm
