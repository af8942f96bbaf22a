// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::PluginManifest — who a plugin is and what it was built against, readable
// from the plugin file without running any of its code.
//
// AOTIPLUG_PLUGIN (plugin.h) places a ManifestNote, an ELF note, in the section
// ".note.aotiplug" of the plugin library. The host reads it from the file (the host
// library's manifest reader parses the ELF file itself, no dlopen) and decides
// compatibility before the plugin's static initializers can run: a plugin built for
// another SDK ABI major, a newer SDK ABI minor, another LibTorch version or another
// libstdc++ string ABI is refused with both values named.
//
// Layout rules: ManifestData's layout 1 (kManifestLayout1Size bytes, every field up to
// sdk_version) is frozen, field by field (the static_asserts below). New fields are
// appended, layout_version goes up, and readers take struct_size from the data: a reader
// needs only the layout-1 bytes, reads what it knows of a longer (newer) note, and sees
// the fields an older, shorter note lacks as zero. So an old host reads a newer manifest
// and a new host an older one (tests/sdk/test_manifest.cpp decodes all three).
// Thread safety: plain values and pure functions; decodeManifest and checkCompatibility
// are compiled into libaotiplug (sdk/src/manifest.cpp).

#include <aotiplug/detail/export.h>
#include <aotiplug/version.h>

#include <c10/core/DeviceType.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

namespace aotiplug {

inline constexpr char kManifestSectionName[] = ".note.aotiplug";
inline constexpr char kManifestNoteOwner[] = "aotiplug";  // the ELF note's name field
inline constexpr std::uint32_t kManifestNoteType = 0x41504c47;  // "GLPA"
inline constexpr std::uint32_t kManifestMagic = 0x31504f41;     // "AOP1"
inline constexpr std::uint16_t kManifestLayoutVersion = 1;
inline constexpr std::size_t kManifestMaxDevices = 16;

// aotiplug::ManifestData — the note's payload, exactly as stored in the file.
struct ManifestData {
  std::uint32_t magic;
  std::uint16_t struct_size;     // sizeof(ManifestData) of the writer
  std::uint16_t layout_version;  // kManifestLayoutVersion of the writer
  std::uint16_t abi_major;       // AOTIPLUG_ABI_MAJOR the plugin was built with
  std::uint16_t abi_minor;
  std::uint16_t torch_major;     // TORCH_VERSION_MAJOR/MINOR/PATCH of the LibTorch headers
  std::uint16_t torch_minor;
  std::uint16_t torch_patch;
  std::uint8_t cxx11_abi;        // _GLIBCXX_USE_CXX11_ABI
  std::uint8_t num_devices;
  std::int8_t devices[kManifestMaxDevices];  // c10::DeviceType values it registers
  char name[64];                 // NUL-terminated
  char version[32];
  char torch_version[32];
  char sdk_version[32];
};
static_assert(sizeof(ManifestData) % 4 == 0, "ELF note payloads are 4-byte padded");

// Layout 1, locked: a field that moves breaks every plugin built before it moved.
inline constexpr std::size_t kManifestLayout1Size = 196;
static_assert(offsetof(ManifestData, magic) == 0 && offsetof(ManifestData, struct_size) == 4 &&
                  offsetof(ManifestData, layout_version) == 6 &&
                  offsetof(ManifestData, abi_major) == 8 && offsetof(ManifestData, abi_minor) == 10 &&
                  offsetof(ManifestData, torch_major) == 12 &&
                  offsetof(ManifestData, torch_minor) == 14 &&
                  offsetof(ManifestData, torch_patch) == 16 &&
                  offsetof(ManifestData, cxx11_abi) == 18 &&
                  offsetof(ManifestData, num_devices) == 19 &&
                  offsetof(ManifestData, devices) == 20 && offsetof(ManifestData, name) == 36 &&
                  offsetof(ManifestData, version) == 100 &&
                  offsetof(ManifestData, torch_version) == 132 &&
                  offsetof(ManifestData, sdk_version) == 164,
              "ManifestData layout 1 is frozen: append new fields, never move one");
static_assert(offsetof(ManifestData, sdk_version) + sizeof(ManifestData::sdk_version) ==
                  kManifestLayout1Size,
              "layout 1 ends after sdk_version");
static_assert(sizeof(ManifestData) >= kManifestLayout1Size, "a layout only grows");

// aotiplug::ManifestNote — the complete ELF note (header, owner name, payload).
struct ManifestNote {
  std::uint32_t namesz;
  std::uint32_t descsz;
  std::uint32_t type;
  char owner[12];  // "aotiplug" padded to a multiple of 4
  ManifestData data;
};
static_assert(sizeof(ManifestNote) == 24 + sizeof(ManifestData), "no padding in the note");

// aotiplug::PluginManifest — a decoded manifest.
struct PluginManifest {
  std::string name;
  std::string version;
  std::uint16_t abi_major = 0;
  std::uint16_t abi_minor = 0;
  std::string torch_version;  // "2.11.0"
  bool cxx11_abi = true;
  std::string sdk_version;
  std::vector<c10::DeviceType> devices;
  std::uint16_t layout_version = 0;
};

// aotiplug::HostAbi — what this host was built with, to compare manifests against.
struct HostAbi {
  std::uint16_t abi_major = AOTIPLUG_ABI_MAJOR;
  std::uint16_t abi_minor = AOTIPLUG_ABI_MINOR;
  std::string torch_version;
  bool cxx11_abi = true;
};

// The HostAbi of the code including this header (LibTorch version from its headers).
HostAbi currentHostAbi();

// Decodes a note payload of any layout version (at least kManifestLayout1Size bytes);
// nullopt with *error set when it is malformed (wrong magic, too short, struct_size not
// what the note holds, strings not terminated, too many devices).
AOTIPLUG_API std::optional<PluginManifest> decodeManifest(const void* data, std::size_t size,
                                                          std::string* error);

// aotiplug::Incompatibility — which rule a manifest breaks.
enum class Incompatibility {
  kNone,
  kAbiMajor,       // SDK ABI majors differ
  kAbiMinorNewer,  // the plugin needs a newer SDK ABI minor than the host has
  kTorchVersion,   // built against another LibTorch version
  kCxx11Abi,       // built with the other libstdc++ string ABI
};

// aotiplug::Compatibility — the verdict, with a message naming both sides, e.g.
// "SDK ABI major differs: plugin 2.0, host 1.3".
struct Compatibility {
  Incompatibility problem = Incompatibility::kNone;
  std::string message;
  bool ok() const noexcept { return problem == Incompatibility::kNone; }
};

// Whether a host built as `host` may load a plugin with manifest `m`.
AOTIPLUG_API Compatibility checkCompatibility(const PluginManifest& m, const HostAbi& host);

namespace detail {

template <std::size_t N>
constexpr void copyFixed(char (&out)[N], const char* text) {
  std::size_t i = 0;
  for (; text[i] != '\0'; ++i) {
    // A compile error in constant evaluation (AOTIPLUG_PLUGIN forces it).
    if (i + 1 >= N) throw "aotiplug manifest: string too long for its field";
    out[i] = text[i];
  }
  for (; i < N; ++i) out[i] = '\0';
}

template <std::size_t N>
inline std::string readFixed(const char (&field)[N]) {
  std::size_t len = 0;
  while (len < N && field[len] != '\0') ++len;
  return std::string(field, len);
}

constexpr ManifestNote makeManifestNote(const char* name, const char* version,
                                        std::initializer_list<c10::DeviceType> devices,
                                        std::uint16_t abi_major, std::uint16_t abi_minor,
                                        const char* torch_version, std::uint16_t torch_major,
                                        std::uint16_t torch_minor, std::uint16_t torch_patch,
                                        std::uint8_t cxx11_abi) {
  ManifestNote note{};
  note.namesz = sizeof(kManifestNoteOwner);  // includes the NUL
  note.descsz = sizeof(ManifestData);
  note.type = kManifestNoteType;
  copyFixed(note.owner, kManifestNoteOwner);
  ManifestData& d = note.data;
  d.magic = kManifestMagic;
  d.struct_size = sizeof(ManifestData);
  d.layout_version = kManifestLayoutVersion;
  d.abi_major = abi_major;
  d.abi_minor = abi_minor;
  d.torch_major = torch_major;
  d.torch_minor = torch_minor;
  d.torch_patch = torch_patch;
  d.cxx11_abi = cxx11_abi;
  if (devices.size() == 0) throw "aotiplug manifest: a plugin must declare a device type";
  if (devices.size() > kManifestMaxDevices) throw "aotiplug manifest: too many device types";
  d.num_devices = static_cast<std::uint8_t>(devices.size());
  std::size_t i = 0;
  for (c10::DeviceType t : devices) d.devices[i++] = static_cast<std::int8_t>(t);
  if (name[0] == '\0') throw "aotiplug manifest: the plugin name is empty";
  copyFixed(d.name, name);
  copyFixed(d.version, version);
  copyFixed(d.torch_version, torch_version);
  copyFixed(d.sdk_version, AOTIPLUG_VERSION);
  return note;
}

}  // namespace detail

}  // namespace aotiplug

#include <torch/headeronly/version.h>

namespace aotiplug {

inline HostAbi currentHostAbi() {
  HostAbi h;
  h.torch_version = TORCH_VERSION;
  h.cxx11_abi = _GLIBCXX_USE_CXX11_ABI != 0;
  return h;
}

}  // namespace aotiplug
