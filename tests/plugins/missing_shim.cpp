// SPDX-License-Identifier: BSD-3-Clause
// A stand-in for a model library compiled by a newer torch: it calls LibTorch C shim
// functions this LibTorch does not export (one versioned, as newer releases add them) and
// one it does. Never loaded: ModelLibrary refuses it before dlopen.
extern "C" {
int aoti_torch_aotiplug_test_missing_v3(void* handle);
int aoti_torch_aotiplug_test_also_missing(int value);
int aoti_torch_get_data_ptr(void* tensor, void** data);  // exported by every LibTorch 2.x
__attribute__((weak)) int aoti_torch_aotiplug_test_weak(void);  // weak: may be absent

__attribute__((visibility("default"))) int aotiplug_test_model_entry(void* handle) {
  void* data = nullptr;
  return aoti_torch_aotiplug_test_missing_v3(handle) + aoti_torch_aotiplug_test_also_missing(1) +
         aoti_torch_get_data_ptr(handle, &data) + (aoti_torch_aotiplug_test_weak ? aoti_torch_aotiplug_test_weak() : 0);
}
}
