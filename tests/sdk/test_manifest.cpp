// SPDX-License-Identifier: BSD-3-Clause
// Unit tests of the plugin manifest (manifest.h): what AOTIPLUG_PLUGIN encodes decodes to
// the same values; notes of the current layout, of layout 1's size (what an older plugin
// writes once the layout has grown) and of a larger future layout all decode; malformed
// notes are refused saying why; every compatibility rule names both sides.
#define BOOST_TEST_MODULE manifest
#include <boost/test/unit_test.hpp>

#include <aotiplug/plugin/manifest.h>

#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

namespace {

using aotiplug::ManifestData;

constexpr aotiplug::ManifestNote kNote = aotiplug::detail::makeManifestNote(
    "sample", "1.2.3", {c10::DeviceType::CPU, c10::DeviceType::CUDA}, 1, 0, "2.11.0", 2, 11, 0, 1);

std::vector<unsigned char> payload(std::size_t size, std::uint16_t declared) {
  std::vector<unsigned char> bytes(size, 0);
  std::memcpy(bytes.data(), &kNote.data, std::min(size, sizeof(ManifestData)));
  std::memcpy(bytes.data() + offsetof(ManifestData, struct_size), &declared, sizeof declared);
  return bytes;
}

std::string decodeError(const std::vector<unsigned char>& bytes) {
  std::string error;
  const auto m = aotiplug::decodeManifest(bytes.data(), bytes.size(), &error);
  BOOST_TEST(!m.has_value());
  return error;
}

void expectSample(const aotiplug::PluginManifest& m) {
  BOOST_TEST(m.name == "sample");
  BOOST_TEST(m.version == "1.2.3");
  BOOST_TEST(m.abi_major == 1);
  BOOST_TEST(m.abi_minor == 0);
  BOOST_TEST(m.torch_version == "2.11.0");
  BOOST_TEST(m.cxx11_abi);
  BOOST_TEST(m.sdk_version == AOTIPLUG_VERSION);
  BOOST_TEST(m.layout_version == aotiplug::kManifestLayoutVersion);
  BOOST_TEST((m.devices == std::vector<c10::DeviceType>{c10::DeviceType::CPU, c10::DeviceType::CUDA}));
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_encoded_note_is_an_elf_note_of_the_current_layout) {
  BOOST_TEST(kNote.namesz == sizeof(aotiplug::kManifestNoteOwner));
  BOOST_TEST(kNote.descsz == sizeof(ManifestData));
  BOOST_TEST(kNote.type == aotiplug::kManifestNoteType);
  BOOST_TEST(std::string(kNote.owner) == "aotiplug");
  BOOST_TEST(kNote.data.struct_size == sizeof(ManifestData));
  BOOST_TEST(sizeof(ManifestData) >= aotiplug::kManifestLayout1Size);
}

BOOST_AUTO_TEST_CASE(notes_of_the_current_an_older_and_a_newer_size_decode) {
  std::string error;
  // The current layout, as plugins of this SDK write it.
  auto m = aotiplug::decodeManifest(&kNote.data, sizeof kNote.data, &error);
  BOOST_REQUIRE_MESSAGE(m.has_value(), error);
  expectSample(*m);
  // Layout 1's size: all a reader needs (an older plugin's note once the layout grows).
  const auto old_note = payload(aotiplug::kManifestLayout1Size, aotiplug::kManifestLayout1Size);
  m = aotiplug::decodeManifest(old_note.data(), old_note.size(), &error);
  BOOST_REQUIRE_MESSAGE(m.has_value(), error);
  expectSample(*m);
  // A newer plugin's note: 40 more bytes of fields this host does not know, a newer layout.
  auto new_note = payload(sizeof(ManifestData) + 40, sizeof(ManifestData) + 40);
  for (std::size_t i = sizeof(ManifestData); i < new_note.size(); ++i) new_note[i] = 0xab;
  const std::uint16_t layout = aotiplug::kManifestLayoutVersion + 1;
  std::memcpy(new_note.data() + offsetof(ManifestData, layout_version), &layout, sizeof layout);
  m = aotiplug::decodeManifest(new_note.data(), new_note.size(), &error);
  BOOST_REQUIRE_MESSAGE(m.has_value(), error);
  BOOST_TEST(m->name == "sample");
  BOOST_TEST(m->layout_version == layout);
  // A note padded beyond what it declares (ELF notes are 4-byte aligned) reads the same.
  const auto padded = payload(sizeof(ManifestData) + 4, sizeof(ManifestData));
  m = aotiplug::decodeManifest(padded.data(), padded.size(), &error);
  BOOST_REQUIRE_MESSAGE(m.has_value(), error);
  expectSample(*m);
}

BOOST_AUTO_TEST_CASE(malformed_notes_are_refused_saying_why) {
  const std::size_t full = sizeof(ManifestData);
  BOOST_TEST(decodeError(payload(100, 100)).find("payload is 100 bytes, expected at least 196") !=
             std::string::npos);
  BOOST_TEST(decodeError(payload(full, 100)).find("declares 100 bytes") != std::string::npos);
  BOOST_TEST(decodeError(payload(full, full + 8)).find("declares " + std::to_string(full + 8) +
                                                       " bytes but the note holds " +
                                                       std::to_string(full)) != std::string::npos);
  std::string error;
  BOOST_TEST(!aotiplug::decodeManifest(nullptr, 0, &error).has_value());

  auto bad = payload(full, full);
  bad[0] ^= 0xff;
  BOOST_TEST(decodeError(bad).find("wrong magic") != std::string::npos);

  bad = payload(full, full);
  bad[offsetof(ManifestData, num_devices)] = 0;
  BOOST_TEST(decodeError(bad).find("declares 0 device types") != std::string::npos);
  bad[offsetof(ManifestData, num_devices)] = aotiplug::kManifestMaxDevices + 1;
  BOOST_TEST(decodeError(bad).find("declares 17 device types") != std::string::npos);

  bad = payload(full, full);
  bad[offsetof(ManifestData, devices)] = 120;
  BOOST_TEST(decodeError(bad).find("unknown device type 120") != std::string::npos);

  bad = payload(full, full);
  std::memset(bad.data() + offsetof(ManifestData, version), 'x', sizeof(ManifestData::version));
  BOOST_TEST(decodeError(bad).find("unterminated string") != std::string::npos);

  bad = payload(full, full);
  bad[offsetof(ManifestData, name)] = '\0';
  BOOST_TEST(decodeError(bad).find("empty plugin name") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(each_compatibility_rule_names_both_sides) {
  std::string error;
  const auto m = aotiplug::decodeManifest(&kNote.data, sizeof kNote.data, &error);
  BOOST_REQUIRE(m.has_value());
  aotiplug::HostAbi host;
  host.abi_major = 1;
  host.abi_minor = 3;
  host.torch_version = "2.11.0";
  host.cxx11_abi = true;
  BOOST_TEST(aotiplug::checkCompatibility(*m, host).ok());

  auto plugin = *m;
  plugin.abi_major = 2;
  auto c = aotiplug::checkCompatibility(plugin, host);
  BOOST_TEST((c.problem == aotiplug::Incompatibility::kAbiMajor));
  BOOST_TEST(c.message == "SDK ABI major differs: plugin 2.0, host 1.3");

  plugin = *m;
  plugin.abi_minor = 4;
  c = aotiplug::checkCompatibility(plugin, host);
  BOOST_TEST((c.problem == aotiplug::Incompatibility::kAbiMinorNewer));
  BOOST_TEST(c.message == "plugin needs a newer SDK ABI minor: plugin 1.4, host 1.3");
  plugin.abi_minor = 2;  // an older minor is fine
  BOOST_TEST(aotiplug::checkCompatibility(plugin, host).ok());

  plugin = *m;
  plugin.torch_version = "2.10.0";
  c = aotiplug::checkCompatibility(plugin, host);
  BOOST_TEST((c.problem == aotiplug::Incompatibility::kTorchVersion));
  BOOST_TEST(c.message == "LibTorch version differs: plugin 2.10.0, host 2.11.0");

  plugin = *m;
  plugin.cxx11_abi = false;
  c = aotiplug::checkCompatibility(plugin, host);
  BOOST_TEST((c.problem == aotiplug::Incompatibility::kCxx11Abi));
  BOOST_TEST(c.message ==
             "libstdc++ C++11 ABI differs: plugin _GLIBCXX_USE_CXX11_ABI=0, host _GLIBCXX_USE_CXX11_ABI=1");
}
