"""The packager as users meet it: installed with pip into a fresh venv, its aotiplug-package
command packaging a module file, the package run and inspected by the aotiplug CLI; and
every packager-made fixture loading and matching in upstream's aoti_load_package.

Run by meson (tests/python/meson.build) with the project venv's python; environment:
AOTIPLUG_BUILD_ROOT, AOTIPLUG_SOURCE_ROOT, AOTIPLUG_FIXTURES.
"""
from __future__ import annotations

import io
import json
import os
import site
import subprocess
import sys
import tempfile
import unittest
import zipfile

BUILD = os.environ["AOTIPLUG_BUILD_ROOT"]
SOURCE = os.environ["AOTIPLUG_SOURCE_ROOT"]
FIXTURES = os.environ["AOTIPLUG_FIXTURES"]
CLI = os.path.join(BUILD, "host", "aotiplug")
PLUGINS = os.path.join(BUILD, "plugins")

MODEL_FILE = '''
import torch

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x, scale):
        return torch.relu(self.fc(x)) * scale, x.sum(dim=1)
'''


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=600, **kw)


class FreshVenv(unittest.TestCase):
    """pip install ./python into a new venv, then the command end to end."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="aotiplug-packager-")
        cls.venv = os.path.join(cls.tmp.name, "venv")
        # The base interpreter, not this venv's: a venv made from a venv is a fresh one.
        base = getattr(sys, "_base_executable", sys.executable)
        # Without pip or setuptools of its own: the project venv's (found through the .pth
        # below) build and install the package, offline.
        r = run([base, "-m", "venv", "--without-pip", cls.venv])
        assert r.returncode == 0, r.stderr
        # torch comes from the project venv (a .pth line), so nothing large is downloaded;
        # the package itself is installed by pip from the source tree, offline.
        vpy = os.path.join(cls.venv, "bin", "python")
        purelib = run([vpy, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
        with open(os.path.join(purelib, "project-torch.pth"), "w") as f:
            f.write("\n".join(site.getsitepackages()) + "\n")
        r = run([vpy, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                 os.path.join(SOURCE, "python")])
        assert r.returncode == 0, r.stdout + r.stderr
        cls.command = os.path.join(cls.venv, "bin", "aotiplug-package")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_the_command_is_installed_from_the_source_tree(self):
        self.assertTrue(os.path.exists(self.command))
        r = run([os.path.join(self.venv, "bin", "python"), "-c", "import aotiplug, sys; print(aotiplug.__file__)"],
                cwd=self.tmp.name)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.strip().startswith(self.venv), r.stdout)  # installed, not the source tree
        r = run([self.command, "--help"])
        self.assertEqual(r.returncode, 0)
        self.assertIn("Exit codes", r.stdout)

    def test_a_module_file_packaged_with_a_dynamic_batch_runs_and_matches_eager(self):
        model = os.path.join(self.tmp.name, "my_model.py")
        with open(model, "w") as f:
            f.write(MODEL_FILE)
        out = os.path.join(self.tmp.name, "net.pt2")
        r = run([self.command, model + ":Net", "--input", "float32:4,8", "--input", "float32:4,4",
                 "--dynamic-batch", "2..32", "-o", out])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("input  x: float32 [-1 (2..32), 8]", r.stdout)
        self.assertIn("output", r.stdout)

        saved = os.path.join(self.tmp.name, "outputs.pt")
        r = run([CLI, "run", out, "--plugins", PLUGINS, "--json", "-n", "2", "--save-outputs", saved])
        self.assertEqual(r.returncode, 0, r.stderr)
        report = json.loads(r.stdout)
        self.assertTrue(report["eager"]["compared"])
        self.assertTrue(report["eager"]["match"])
        self.assertEqual(len(report["outputs"]), 2)

        r = run([CLI, "inspect", out, "--plugins", PLUGINS, "--json"])
        self.assertEqual(r.returncode, 0, r.stderr)
        m = json.loads(r.stdout)["models"][0]
        self.assertEqual(m["inputs"][0]["shape"], [-1, 8])
        self.assertEqual(m["inputs"][0]["min"][0], 2)
        self.assertEqual(m["inputs"][0]["max"][0], 32)
        import torch
        self.assertEqual(m["torch_version"], torch.__version__)

        # What --save-outputs wrote is what torch.load reads: the model's outputs.
        import torch
        outputs = torch.load(saved)
        self.assertEqual([list(t.shape) for t in outputs], [o["shape"] for o in report["outputs"]])

        # And upstream loads it too.
        loaded = torch._inductor.aoti_load_package(out)
        x, s = torch.randn(5, 8), torch.randn(5, 4)
        got = loaded(x, s)
        self.assertEqual(got[0].shape, (5, 4))

    def test_bad_arguments_are_usage_errors_naming_the_problem(self):
        model = os.path.join(self.tmp.name, "bad_model.py")
        with open(model, "w") as f:
            f.write(MODEL_FILE)
        out = os.path.join(self.tmp.name, "bad.pt2")
        cases = [
            ([model + ":Net", "--input", "floaty:4,8", "-o", out], "'floaty' is not a torch dtype"),
            ([model + ":Nope", "--input", "float32:4,8", "-o", out], "has no 'Nope'"),
            (["/nonexistent/m.py:Net", "--input", "float32:4,8", "-o", out], "model file /nonexistent/m.py does not exist"),
            ([model + ":Net", "-o", out], "give the example inputs"),
            ([model + ":Net", "--input", "float32:4,8", "--dynamic", "3.0=1..4", "-o", out], "there are 1 inputs"),
            ([model + ":Net", "--input", "float32:4,8", "-o", "net.zip"], "ends in .pt2"),
        ]
        for args, expected in cases:
            with self.subTest(expected=expected):
                r = run([self.command] + args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(expected, r.stderr)
                self.assertNotIn("Traceback", r.stderr)
        self.assertFalse(os.path.exists(out))


class UpstreamLoadsOurPackages(unittest.TestCase):
    """Every packager-made fixture loads in torch._inductor.aoti_load_package and matches."""

    def test_every_packager_fixture(self):
        import torch

        with open(os.path.join(FIXTURES, "fixtures.json")) as f:
            index = json.load(f)
        checked = 0
        for name, info in sorted(index.items()):
            if info.get("plain"):
                continue  # not ours
            with self.subTest(fixture=name):
                pt2 = os.path.join(FIXTURES, name + ".pt2")
                if info.get("weights") == "pickle_weights":
                    # Weights under data/weights/: upstream loads them only when asked (its
                    # aoti_load_package does not, and running such a model then crashes).
                    from torch.export.pt2_archive._package import load_pt2
                    loaded = load_pt2(pt2, load_weights_from_disk=True).aoti_runners["model"]
                else:
                    loaded = torch._inductor.aoti_load_package(pt2)
                with zipfile.ZipFile(pt2) as z:
                    names = z.namelist()
                    self.assertFalse([n for n in names if "/extra/aotiplug/" in n], "binary entries under extra/")
                    read = lambda suffix: torch.load(io.BytesIO(z.read(next(n for n in names if n.endswith(suffix)))))
                    inputs = read("data/sample_inputs/model.pt")
                    reference = read("data/aotiplug/model/reference_outputs.pt")
                if info.get("weights") == "host":
                    # Compiled without its weights: upstream's user supplies them too.
                    weights = torch.load(os.path.join(FIXTURES, name + ".data.pt"))["weights_a"]
                    loaded.load_constants(weights, check_full_update=True, user_managed=False)
                got = loaded(*inputs)
                got = list(got) if isinstance(got, (list, tuple)) else [got]
                self.assertEqual(len(got), len(reference))
                for i, (g, r) in enumerate(zip(got, reference)):
                    tol = 2e-2 if r.dtype in (torch.float16, torch.bfloat16) else 1e-4
                    self.assertEqual(g.dtype, r.dtype, f"output {i}")
                    self.assertTrue(torch.allclose(g.float(), r.float(), atol=tol, rtol=tol), f"output {i}")
                checked += 1
        self.assertGreaterEqual(checked, 5)


if __name__ == "__main__":
    unittest.main(verbosity=2)
