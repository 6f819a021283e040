#include "libbpf_log.h"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <vector>

namespace nm {

namespace {

// Only the tail matters; bounded so a 16 MiB verifier log does not pile up.
constexpr size_t kMaxLines = 400;

thread_local LibbpfLogCapture* current_capture = nullptr;

int PrintCallback(enum libbpf_print_level level, const char* format, va_list args) {
  if (current_capture == nullptr) {
    if (level != LIBBPF_WARN) return 0;
    return vfprintf(stderr, format, args);
  }
  if (level == LIBBPF_DEBUG) return 0;
  va_list copy;
  va_copy(copy, args);
  int needed = vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  if (needed <= 0) return needed;
  std::vector<char> buf(static_cast<size_t>(needed) + 1);
  vsnprintf(buf.data(), buf.size(), format, args);
  current_capture->Append(std::string(buf.data(), static_cast<size_t>(needed)));
  return needed;
}

}  // namespace

void InstallLibbpfPrint() { libbpf_set_print(PrintCallback); }

LibbpfLogCapture::LibbpfLogCapture() : previous_(current_capture) { current_capture = this; }

LibbpfLogCapture::~LibbpfLogCapture() { current_capture = previous_; }

void LibbpfLogCapture::Append(const std::string& text) {
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty()) {
      lines_.push_back(std::move(line));
      if (lines_.size() > kMaxLines) lines_.pop_front();
    }
    start = end + 1;
  }
}

std::string LibbpfLogCapture::Tail(size_t count) const {
  size_t first = lines_.size() > count ? lines_.size() - count : 0;
  std::string out;
  for (size_t i = first; i < lines_.size(); i++) {
    if (!out.empty()) out += '\n';
    out += lines_[i];
  }
  return out;
}

}  // namespace nm
