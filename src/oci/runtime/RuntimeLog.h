// The --log file in runc's formats, so that callers that scan runc's log (monocri's own client,
// CRI-O, containerd) read ours: json (`{"level":"error","msg":"...","time":"..."}`, one per line)
// or text (`time="..." level=error msg="..."`). Without --log, lines go to stderr.
#pragma once

#include <string>
#include <string_view>

namespace monocri::runtime {

enum class LogFormat { kText, kJson };

class RuntimeLog {
 public:
  // Opened once by main, before anything can fail. Throws RuntimeError if the file will not open.
  static void open(const std::string& path, LogFormat format);
  static void error(std::string_view message) { write("error", message); }
  static void warning(std::string_view message) { write("warning", message); }
  // The fd lines go to (the log file, or 2): the container's init keeps it to report errors
  // after create returned.
  static int fd();

 private:
  static void write(std::string_view level, std::string_view message);
};

}  // namespace monocri::runtime
