// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// What the fuzzers exercise, shared with the regression test that replays their inputs
// (tests/fuzz/regressions/) in the normal suite. Each function must return normally for
// any input: errors are aotiplug::Error, never a crash.

#include <aotiplug/error.h>
#include <aotiplug/host/manifest_reader.h>
#include <aotiplug/package/pt2_package.h>

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace aotiplug_fuzz {

// The plugin manifest reader: the ELF parser and the note decoder.
inline void fuzzManifest(const std::uint8_t* data, std::size_t size) {
  const auto result = aotiplug::readManifestFromMemory(data, size);
  if (result.manifest) {
    (void)aotiplug::checkCompatibility(*result.manifest, aotiplug::currentHostAbi());
  }
  std::string error;
  (void)aotiplug::decodeManifest(data, size, &error);
}

// The package reader: archive, entry names and sizes, metadata and specs, stored weights,
// sample inputs, and extraction (stored entries are copied file to file with offsets and
// sizes taken from the archive). The bytes are served from a memory file; extraction
// writes into a private temporary directory, removed after each input.
inline void fuzzPackage(const std::uint8_t* data, std::size_t size) {
  const int fd = ::memfd_create("aotiplug-fuzz", MFD_CLOEXEC);
  if (fd < 0) return;
  if (size > 0 && ::write(fd, data, size) != static_cast<ssize_t>(size)) {
    ::close(fd);
    return;
  }
  try {
    aotiplug::Pt2Package package("/proc/self/fd/" + std::to_string(fd));
    for (const std::string& name : package.modelNames()) {
      const aotiplug::PackagedModel& m = package.model(name);
      for (const std::string& r : m.records) (void)package.readRecord(r);
      try {
        aotiplug::PrivateDirectory dir("aotiplug-fuzz-");
        (void)package.extract(m, dir);
      } catch (const aotiplug::Error&) {
      }
      try {
        (void)package.storedWeights(m);
      } catch (const aotiplug::Error&) {
      }
      try {
        (void)package.sampleInputs(m);
        (void)package.referenceOutputs(m);
      } catch (const aotiplug::Error&) {
      }
    }
  } catch (const aotiplug::Error&) {
    // A refused package: the expected outcome for most inputs.
  }
  ::close(fd);
}

}  // namespace aotiplug_fuzz
