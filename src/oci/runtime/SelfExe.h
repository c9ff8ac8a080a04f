// CVE-2019-5736: a container that can make the runtime execute its own binary inside the
// container (`#!/proc/self/exe` as an interpreter) could open and overwrite that binary on the
// host. The commands that enter containers therefore run from a sealed memfd copy of the
// runtime: /proc/self/exe is then a file no one can write.
#pragma once

namespace monocri::runtime {

// Re-executes this process from a sealed memfd copy of its binary, unless it already runs from
// one (then returns). Throws RuntimeError if the copy cannot be made.
void ensureSealedSelf(char** argv);

}  // namespace monocri::runtime
