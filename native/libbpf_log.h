// libbpf's log output. libbpf prints through one process-wide callback; while a
// LibbpfLogCapture is alive on a thread, that thread's messages are buffered so that a
// failing call (a verifier rejection in objectLoad) can put the log tail into its error.
// Outside a capture, warnings go to stderr as libbpf itself would print them.
#pragma once

#include <deque>
#include <string>

namespace nm {

void InstallLibbpfPrint();

class LibbpfLogCapture {
 public:
  LibbpfLogCapture();
  ~LibbpfLogCapture();
  LibbpfLogCapture(const LibbpfLogCapture&) = delete;
  LibbpfLogCapture& operator=(const LibbpfLogCapture&) = delete;

  void Append(const std::string& text);
  // The last `count` non-empty lines joined with '\n' (empty when nothing was logged).
  std::string Tail(size_t count) const;

 private:
  std::deque<std::string> lines_;
  LibbpfLogCapture* previous_;
};

}  // namespace nm
