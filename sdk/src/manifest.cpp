// SPDX-License-Identifier: BSD-3-Clause
// Manifest decoding and compatibility (manifest.h), compiled once into libaotiplug.

#include <aotiplug/plugin/manifest.h>

#include <algorithm>
#include <cstring>

namespace aotiplug {

using detail::readFixed;

std::optional<PluginManifest> decodeManifest(const void* data, std::size_t size,
                                                    std::string* error) {
  auto fail = [&](const std::string& why) {
    if (error != nullptr) *error = why;
    return std::nullopt;
  };
  // The fields every layout version has: layout 1's. A newer note's extra bytes are not
  // read; fields an older one lacks (none yet: layout 1 is the first) stay zero.
  constexpr std::size_t kMinimum = kManifestLayout1Size;
  if (data == nullptr || size < kMinimum) {
    return fail("manifest payload is " + std::to_string(size) + " bytes, expected at least " +
                std::to_string(kMinimum));
  }
  ManifestData d{};
  std::uint16_t declared = 0;
  std::memcpy(&d.magic, data, sizeof d.magic);  // the payload may be unaligned in a file buffer
  std::memcpy(&declared, static_cast<const char*>(data) + offsetof(ManifestData, struct_size),
              sizeof declared);
  if (d.magic != kManifestMagic) return fail("manifest has a wrong magic number");
  if (declared < kMinimum || declared > size) {
    return fail("manifest declares " + std::to_string(declared) +
                " bytes but the note holds " + std::to_string(size));
  }
  std::memcpy(&d, data, std::min<std::size_t>(declared, sizeof d));
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
  m.name = readFixed(d.name);
  if (m.name.empty()) return fail("manifest has an empty plugin name");
  m.version = readFixed(d.version);
  m.abi_major = d.abi_major;
  m.abi_minor = d.abi_minor;
  m.torch_version = readFixed(d.torch_version);
  m.cxx11_abi = d.cxx11_abi != 0;
  m.sdk_version = readFixed(d.sdk_version);
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

Compatibility checkCompatibility(const PluginManifest& m, const HostAbi& host) {
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
