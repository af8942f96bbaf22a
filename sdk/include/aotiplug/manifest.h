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
// Layout rules: ManifestData is frozen. New fields are appended, layout_version goes up,
// and readers take struct_size from the data, so an old host can read a newer manifest
// and a new host an older one.
// Thread safety: plain values and pure functions.

#include <aotiplug/version.h>

#include <c10/core/DeviceType.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
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

// Decodes a note payload; nullopt with *error set when it is malformed (wrong magic, too
// short, strings not terminated, too many devices).
inline std::optional<PluginManifest> decodeManifest(const void* data, std::size_t size,
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
inline Compatibility checkCompatibility(const PluginManifest& m, const HostAbi& host);

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

inline std::optional<PluginManifest> decodeManifest(const void* data, std::size_t size,
                                                    std::string* error) {
  auto fail = [&](const std::string& why) {
    if (error != nullptr) *error = why;
    return std::nullopt;
  };
  // The fields every layout version has: everything up to and including sdk_version.
  constexpr std::size_t kMinimum = sizeof(ManifestData);
  if (data == nullptr || size < kMinimum) {
    return fail("manifest payload is " + std::to_string(size) + " bytes, expected at least " +
                std::to_string(kMinimum));
  }
  ManifestData d;
  std::memcpy(&d, data, sizeof d);  // the payload may be unaligned in a file buffer
  if (d.magic != kManifestMagic) return fail("manifest has a wrong magic number");
  if (d.struct_size < kMinimum || d.struct_size > size) {
    return fail("manifest declares " + std::to_string(d.struct_size) +
                " bytes but the note holds " + std::to_string(size));
  }
  if (d.num_devices == 0 || d.num_devices > kManifestMaxDevices) {
    return fail("manifest declares " + std::to_string(d.num_devices) + " device types");
  }
  auto terminated = [](const char* field, std::size_t n) {
    return std::memchr(field, '\0', n) != nullptr;
  };
  if (!terminated(d.name, sizeof d.name) || !terminated(d.version, sizeof d.version) ||
      !terminated(d.torch_version, sizeof d.torch_version) ||
      !terminated(d.sdk_version, sizeof d.sdk_version)) {
    return fail("manifest has an unterminated string");
  }
  PluginManifest m;
  m.name = detail::readFixed(d.name);
  if (m.name.empty()) return fail("manifest has an empty plugin name");
  m.version = detail::readFixed(d.version);
  m.abi_major = d.abi_major;
  m.abi_minor = d.abi_minor;
  m.torch_version = detail::readFixed(d.torch_version);
  m.cxx11_abi = d.cxx11_abi != 0;
  m.sdk_version = detail::readFixed(d.sdk_version);
  m.layout_version = d.layout_version;
  for (std::size_t i = 0; i < d.num_devices; ++i) {
    const int value = d.devices[i];
    if (value < 0 || value >= static_cast<int>(c10::COMPILE_TIME_MAX_DEVICE_TYPES)) {
      return fail("manifest names an unknown device type " + std::to_string(value));
    }
    m.devices.push_back(static_cast<c10::DeviceType>(value));
  }
  return m;
}

inline Compatibility checkCompatibility(const PluginManifest& m, const HostAbi& host) {
  auto abi = [](unsigned major, unsigned minor) {
    return std::to_string(major) + "." + std::to_string(minor);
  };
  if (m.abi_major != host.abi_major) {
    return {Incompatibility::kAbiMajor, "SDK ABI major differs: plugin " +
                                            abi(m.abi_major, m.abi_minor) + ", host " +
                                            abi(host.abi_major, host.abi_minor)};
  }
  if (m.abi_minor > host.abi_minor) {
    return {Incompatibility::kAbiMinorNewer, "plugin needs a newer SDK ABI minor: plugin " +
                                                 abi(m.abi_major, m.abi_minor) + ", host " +
                                                 abi(host.abi_major, host.abi_minor)};
  }
  if (m.torch_version != host.torch_version) {
    return {Incompatibility::kTorchVersion, "LibTorch version differs: plugin " +
                                                m.torch_version + ", host " +
                                                host.torch_version};
  }
  if (m.cxx11_abi != host.cxx11_abi) {
    return {Incompatibility::kCxx11Abi,
            std::string("libstdc++ C++11 ABI differs: plugin _GLIBCXX_USE_CXX11_ABI=") +
                (m.cxx11_abi ? "1" : "0") + ", host _GLIBCXX_USE_CXX11_ABI=" +
                (host.cxx11_abi ? "1" : "0")};
  }
  return {};
}

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
