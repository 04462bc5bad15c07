// Error and argument helpers for the latsim KVM addon (see common.h).
// Leaves out: retries and any interpretation of errors; callers decide.
#include "common.h"

#include <string.h>
#include <time.h>

#include <cmath>

namespace latsim {

void ThrowCode(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  throw e;
}

std::string ErrnoName(int err) {
  const char* n = strerrorname_np(err);
  if (n != nullptr) return n;
  return "E" + std::to_string(err);
}

void ThrowErrno(Napi::Env env, int err, const std::string& what) {
  std::string name = ErrnoName(err);
  Napi::Error e = Napi::Error::New(env, what + ": " + strerror(err) + " (" + name + ")");
  e.Set("code", Napi::String::New(env, name));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, what));
  throw e;
}

static std::string ArgLabel(size_t i, const char* name) {
  return std::string("argument ") + std::to_string(i) + " (" + name + ")";
}

bool ArgPresent(const Napi::CallbackInfo& info, size_t i) {
  return info.Length() > i && !info[i].IsUndefined() && !info[i].IsNull();
}

int64_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t min, int64_t max) {
  Napi::Env env = info.Env();
  if (info.Length() <= i) ThrowCode(env, "EINVAL", ArgLabel(i, name) + " is missing");
  Napi::Value v = info[i];
  int64_t out = 0;
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || std::floor(d) != d || std::fabs(d) > 9007199254740991.0)
      ThrowCode(env, "EINVAL", ArgLabel(i, name) + " must be a safe integer");
    out = static_cast<int64_t>(d);
  } else if (v.IsBigInt()) {
    bool lossless = false;
    out = v.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) ThrowCode(env, "EINVAL", ArgLabel(i, name) + " does not fit in 64 bits");
  } else {
    ThrowCode(env, "EINVAL", ArgLabel(i, name) + " must be an integer");
  }
  if (out < min || out > max)
    ThrowCode(env, "EINVAL", ArgLabel(i, name) + " is out of range [" + std::to_string(min) + ", " +
                                 std::to_string(max) + "]");
  return out;
}

int ArgFd(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return static_cast<int>(ArgInt(info, i, name, 0, INT32_MAX));
}

uint64_t ValueU64(Napi::Env env, Napi::Value v, const std::string& name) {
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || std::floor(d) != d || d < 0 || d > 9007199254740991.0)
      ThrowCode(env, "EINVAL", name + " must be a non-negative safe integer or a bigint");
    return static_cast<uint64_t>(d);
  }
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t out = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) ThrowCode(env, "EINVAL", name + " must fit in an unsigned 64-bit value");
    return out;
  }
  ThrowCode(env, "EINVAL", name + " must be a number or a bigint");
}

uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i) ThrowCode(info.Env(), "EINVAL", ArgLabel(i, name) + " is missing");
  return ValueU64(info.Env(), info[i], ArgLabel(i, name));
}

bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* name, bool fallback) {
  if (!ArgPresent(info, i)) return fallback;
  if (!info[i].IsBoolean()) ThrowCode(info.Env(), "EINVAL", ArgLabel(i, name) + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsString())
    ThrowCode(info.Env(), "EINVAL", ArgLabel(i, name) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

Bytes ArgBytes(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsTypedArray())
    ThrowCode(info.Env(), "EINVAL", ArgLabel(i, name) + " must be a Uint8Array or Buffer");
  // napi_get_typedarray_info also serves views of a SharedArrayBuffer (such as a
  // WebAssembly.Memory), which napi_get_arraybuffer_info refuses.
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  if (napi_get_typedarray_info(info.Env(), info[i], &type, &length, &data, nullptr, nullptr) != napi_ok)
    ThrowCode(info.Env(), "EINVAL", ArgLabel(i, name) + " cannot be read");
  return Bytes{static_cast<uint8_t*>(data), info[i].As<Napi::TypedArray>().ByteLength()};
}

void EnsureCode(Napi::Error& e) {
  Napi::Object o = e.Value();
  if (!o.Has("code")) o.Set("code", Napi::String::New(e.Env(), "EINVAL"));
}

Bytes ArgU32Array(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
    ThrowCode(info.Env(), "EINVAL", ArgLabel(i, name) + " must be a Uint32Array");
  return ArgBytes(info, i, name);
}

uint64_t MonotonicNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace latsim
