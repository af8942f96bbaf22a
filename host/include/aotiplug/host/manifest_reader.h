// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::readManifest — reads a plugin's manifest from its file without loading it.
//
// Parses the ELF file with libelf (never dlopen), checks that it is a shared library for
// this machine, finds the ".note.aotiplug" section and decodes the aotiplug note in it.
// Because nothing is loaded, none of the plugin's code (static initializers included)
// runs, whatever the file contains. Hostile files are expected: every offset is checked.
//
// Thread safety: the functions are reentrant. Ownership: results are plain values.

#include <aotiplug/host/path_trust.h>
#include <aotiplug/plugin/manifest.h>

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace aotiplug {

// aotiplug::ManifestReadStatus — why a manifest could not be read.
enum class ManifestReadStatus {
  kOk,
  kIoError,          // cannot open or read the file
  kNotElf,           // not an ELF file at all
  kTruncated,        // an ELF file cut short
  kNotSharedLibrary, // ELF, but an executable/object, or for another machine or class
  kNoManifest,       // a shared library without an aotiplug note
  kBadManifest,      // an aotiplug note that does not decode
};

const char* manifestReadStatusName(ManifestReadStatus status) noexcept;

// aotiplug::ManifestReadResult
struct ManifestReadResult {
  ManifestReadStatus status = ManifestReadStatus::kIoError;
  std::string message;  // why, when status != kOk
  std::optional<PluginManifest> manifest;
};

// Reads the manifest of the file at path, or of the file open at `fd` (the descriptor is
// only read from; the caller closes it).
ManifestReadResult readManifest(const std::string& path);
ManifestReadResult readManifest(int fd);

// The libraries the dynamic loader would take from the file's own search path to satisfy
// its DT_NEEDED entries: each name looked up in its DT_RUNPATH (or, without one, DT_RPATH)
// directories, $ORIGIN replaced by `origin` (the directory of the file), first match
// wins; names found nowhere there (left to the system's trusted directories) are not
// listed. Empty when the file cannot be read.
// `memo` (path_trust.h) keeps the resolutions for the other plugins of a batch.
std::vector<std::string> runpathDependencies(int fd, const std::string& origin, TrustMemo* memo = nullptr);

// Reads the manifest of an ELF image held in memory (used by the fuzzer and by tools).
ManifestReadResult readManifestFromMemory(const void* data, std::size_t size);

}  // namespace aotiplug
