// The OCI runtime binary (runc, crun, or monocri's own) that sets up containers.
#pragma once

#include <optional>
#include <string>

namespace monocri::oci {

class OciRuntimeBinary {
 public:
  // `nameOrPath`: "runc" is looked up in PATH; "/usr/sbin/runc" is used as is.
  explicit OciRuntimeBinary(std::string nameOrPath) : nameOrPath_(std::move(nameOrPath)) {}

  // The executable's path now, or nullopt with `why` explaining what is missing. Looked up on
  // each call (a few stat calls), so installing the runtime later is noticed.
  std::optional<std::string> resolve(std::string* why = nullptr) const;
  const std::string& name() const { return nameOrPath_; }

 private:
  std::string nameOrPath_;
};

}  // namespace monocri::oci
