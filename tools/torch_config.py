"""Print what the build needs to know about the venv's torch, one `key=value` per line.

meson runs this with the project venv's python (see the root meson.build); nothing here
imports torch's heavy parts beyond what the answers need.
"""
import importlib.util
import os
import sys


def main() -> int:
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        print("error=torch is not installed in " + sys.executable)
        return 0
    root = spec.submodule_search_locations[0]
    import torch  # noqa: E402  (only after we know it exists)

    cuda = torch.version.cuda or ""
    print("root=" + root)
    print("version=" + torch.__version__)
    print("base_version=" + torch.__version__.split("+")[0])
    print("cxx11_abi=" + ("1" if torch._C._GLIBCXX_USE_CXX11_ABI else "0"))
    print("cuda=" + cuda)
    print("lib=" + os.path.join(root, "lib"))
    print("include=" + os.path.join(root, "include"))
    print("version_file=" + os.path.join(root, "version.py"))
    # The CUDA runtime headers the cu* wheels ship (nvidia/cu13/include...), usable when no
    # CUDA toolkit is installed.
    cuda_include = ""
    if cuda:
        nvidia = importlib.util.find_spec("nvidia")
        for base in (nvidia.submodule_search_locations or []) if nvidia else []:
            for sub in sorted(os.listdir(base)):
                candidate = os.path.join(base, sub, "include")
                if os.path.exists(os.path.join(candidate, "cuda_runtime_api.h")):
                    cuda_include = candidate
    print("cuda_include=" + cuda_include)
    # torchvision's op library (nms, roi_align...), for the extern-kernel tests; found
    # without importing torchvision.
    vision = importlib.util.find_spec("torchvision")
    vision_ops = ""
    if vision is not None and vision.submodule_search_locations:
        candidate = os.path.join(vision.submodule_search_locations[0], "_C.so")
        vision_ops = candidate if os.path.exists(candidate) else ""
    print("torchvision_ops=" + vision_ops)
    return 0


if __name__ == "__main__":
    sys.exit(main())
