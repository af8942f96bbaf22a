"""The aotiplug Triton backend in a real Triton Inference Server (nvidia-pytriton's 2.51),
on loopback ports the test picks, driven with tritonclient over HTTP and gRPC.

Models come from the suite's fixtures (tests/fixtures): packages made by plain
torch._inductor.aoti_compile_and_package and by aotiplug's packager, static and with a
dynamic batch, several dtypes. Every config.pbtxt is one line (`backend: "aotiplug"`)
unless a test is about what a config says. The server is started and stopped by the test,
by pid, with bounded waits (tools/triton_server.py).

Run by meson (tests/triton/meson.build) with the project venv's python; environment:
AOTIPLUG_BUILD_ROOT, AOTIPLUG_SOURCE_ROOT, AOTIPLUG_FIXTURES, AOTIPLUG_TRITON_BACKENDS,
AOTIPLUG_TEST_PLUGINS.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import numpy as np
import torch
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

BUILD = os.environ["AOTIPLUG_BUILD_ROOT"]
SOURCE = os.environ["AOTIPLUG_SOURCE_ROOT"]
FIXTURES = os.environ["AOTIPLUG_FIXTURES"]
BACKENDS = os.environ["AOTIPLUG_TRITON_BACKENDS"]
TEST_PLUGINS = os.environ["AOTIPLUG_TEST_PLUGINS"]
sys.path.insert(0, os.path.join(SOURCE, "tools"))
from triton_server import TritonServer, server_library  # noqa: E402

BACKEND = os.path.join(BACKENDS, "aotiplug", "libtriton_aotiplug.so")
ONE_LINE = 'backend: "aotiplug"\n'


def fixture_data(name):
    return torch.load(os.path.join(FIXTURES, name + ".data.pt"), weights_only=False)


def add_model(repo, name, fixture, config=ONE_LINE, files=None):
    os.makedirs(os.path.join(repo, name, "1"))
    with open(os.path.join(FIXTURES, fixture + ".pt2"), "rb") as src, \
            open(os.path.join(repo, name, "1", "model.pt2"), "wb") as dst:
        dst.write(src.read())
    with open(os.path.join(repo, name, "config.pbtxt"), "w") as f:
        f.write(config)
    for file_name, obj in (files or {}).items():
        path = os.path.join(repo, name, file_name)
        if isinstance(obj, bytes):
            with open(path, "wb") as f:
                f.write(obj)
        else:
            torch.save(obj, path)


def plugin_dir(path):
    """The build's plugins, and two that must be refused: one crashes whoever loads it, one
    was built for another SDK ABI."""
    os.makedirs(path)
    for name in ("cpu/libaotiplug_cpu.so", "cuda/libaotiplug_cuda.so"):
        os.symlink(os.path.join(BUILD, "plugins", name), os.path.join(path, os.path.basename(name)))
    for name in ("libtest_crashes_on_load.so", "libtest_abi_major.so"):
        os.symlink(os.path.join(TEST_PLUGINS, name), os.path.join(path, name))
    return path


def http_input(name, array, dtype=None):
    i = httpclient.InferInput(name, list(array.shape), dtype or np_to_triton(array))
    i.set_data_from_numpy(array, binary_data=True)
    return i


def np_to_triton(array):
    from tritonclient.utils import np_to_triton_dtype
    return np_to_triton_dtype(array.dtype)


def control(client, action, model, weights=None, version=None):
    """One request to the weights control model; returns its outputs."""
    inputs = []
    for name, value in (("action", action), ("model", model), ("weights", weights), ("version", version)):
        if value is None:
            continue
        i = httpclient.InferInput(name, [1], "BYTES")
        i.set_data_from_numpy(np.array([value.encode()], dtype=np.object_))
        inputs.append(i)
    r = client.infer("control", inputs)
    return {"status": r.as_numpy("status")[0].decode(), "active": r.as_numpy("active_version")[0].decode(),
            "commits": int(r.as_numpy("commits")[0])}


class BackendLibrary(unittest.TestCase):
    """What the backend library imports and exports, against the server library."""

    def test_exports_only_entry_points(self):
        out = subprocess.run(["nm", "-D", "--defined-only", BACKEND], capture_output=True, text=True, check=True).stdout
        exported = sorted(line.split()[-1] for line in out.splitlines() if line.strip())
        self.assertIn("TRITONBACKEND_ModelInstanceExecute", exported)
        self.assertEqual([s for s in exported if not s.startswith("TRITONBACKEND_")], [])

    def test_every_undefined_symbol_is_triton_s_and_in_the_server_library(self):
        # ldd -r resolves everything the backend's own dependencies provide; what is left
        # must be Triton's API, and each function must be exported by the server library.
        r = subprocess.run(["ldd", "-r", BACKEND], capture_output=True, text=True)
        out = r.stdout + r.stderr
        undefined = sorted(set(re.findall(r"undefined symbol: (\S+)", out)))
        self.assertTrue(undefined, "the backend should leave Triton's symbols to the server process")
        self.assertEqual([s for s in undefined if not s.startswith(("TRITONSERVER_", "TRITONBACKEND_"))], [])
        server = subprocess.run(["nm", "-D", "--defined-only", server_library()], capture_output=True, text=True,
                                check=True).stdout
        provided = {line.split()[-1] for line in server.splitlines() if line.strip()}
        self.assertEqual([s for s in undefined if s not in provided], [],
                         "declared in triton/aotiplug/triton_api.h but not in " + server_library())
        # And the backend does not link the server library itself.
        needed = subprocess.run(["readelf", "-d", BACKEND], capture_output=True, text=True, check=True).stdout
        self.assertNotIn("tritonserver", needed)


class Serving(unittest.TestCase):
    """One server over a repository of fixture models (explicit model control)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="aotiplug-triton-")
        cls.repo = os.path.join(cls.tmp.name, "repo")
        cls.dyn = fixture_data("dynamic_batch")
        # Weights B as users save them: the module's own state_dict() (make_fixtures.py).
        with open(os.path.join(FIXTURES, "dynamic_batch.state_dict_b.pt"), "rb") as f:
            state_dict_b = f.read()
        repo = cls.repo
        add_model(repo, "plain_conv", "plain_conv_dynamic")  # plain package, batch 2..15
        add_model(repo, "packaged", "dynamic_batch", files={  # aotiplug-packaged, batch 1..64
            "weights_a.pt": cls.dyn["weights_a"],
            "weights_b.pt": state_dict_b,
            "wrong_shape.pt": {k: (v[:1] if v.dim() > 0 else v) for k, v in cls.dyn["weights_b"].items()},
            "not_weights.txt": b"not a pickle",
        })
        add_model(repo, "multi", "multi_io")  # static; float32, int64, bfloat16 in; + float16 out
        add_model(repo, "static", "mlp")
        add_model(repo, "split", "plain_conv_dynamic",
                  config=ONE_LINE + "max_batch_size: 100\n")  # above the package's 15: split
        add_model(repo, "pair", "dynamic_batch",
                  config=ONE_LINE + "instance_group [{ kind: KIND_CPU, count: 2 }]\n",
                  files={"weights_b.pt": state_dict_b})
        add_model(repo, "contradict", "mlp")  # loaded by test_contradicting_configs only
        add_model(repo, "named", "plain_conv_dynamic", config=ONE_LINE +  # AOTInductor's names replaced
                  'parameters { key: "input_names" value { string_value: "image" } }\n'
                  'parameters { key: "output_names" value { string_value: "logits" } }\n')
        add_model(repo, "queued", "dynamic_batch",  # holds a request up to 3 s for a batch of 64
                  config=ONE_LINE + "max_batch_size: 64\n"
                  "dynamic_batching { preferred_batch_size: [64] max_queue_delay_microseconds: 3000000 }\n")
        add_model(repo, "shared", "shared_dims",  # batch 3..4; x, mask and pick share dimensions
                  config=ONE_LINE + "max_batch_size: 8\n"
                  "dynamic_batching { preferred_batch_size: [3] max_queue_delay_microseconds: 3000000 }\n")
        os.makedirs(os.path.join(repo, "control"))
        with open(os.path.join(repo, "control", "config.pbtxt"), "w") as f:
            f.write(ONE_LINE + 'parameters { key: "weights_control" value { string_value: "true" } }\n')
        os.makedirs(os.path.join(repo, "control", "1"))
        cls.plugins = plugin_dir(os.path.join(cls.tmp.name, "plugins"))
        cls.server = TritonServer(repo, backend_dir=BACKENDS, plugin_dir=cls.plugins,
                                  log_path=os.path.join(BUILD, "tests", "triton", "serving-server.log"),
                                  explicit=True,
                                  load=("plain_conv", "packaged", "multi", "static", "split", "pair", "named", "queued", "shared",
                                        "control"),
                                  env={"XDG_CACHE_HOME": os.path.join(cls.tmp.name, "cache")})
        cls.server.start()
        cls.http = httpclient.InferenceServerClient(cls.server.http_url)

    @classmethod
    def tearDownClass(cls):
        cls.http.close()  # Triton waits for open connections before it exits
        status = cls.server.stop()
        cls.tmp.cleanup()
        # A clean shutdown: Triton finalizes every model and the backend.
        assert status == 0, f"tritonserver exited with {status}"

    def assertServerReady(self):
        self.assertTrue(self.server.alive(), "the server died")
        self.assertTrue(self.http.is_server_ready())

    def stats_once(self, model, reached, what):
        """The model's statistics once `reached(stats)` holds: the backend reports them after
        it has sent the responses, so a client may ask before they are in (30 s at most)."""
        deadline = time.monotonic() + 30
        while True:
            stats = self.http.get_inference_statistics(model)["model_stats"][0]
            if reached(stats):
                return stats
            self.assertLess(time.monotonic(), deadline, f"{what} never reached {model}'s statistics: {stats}")
            time.sleep(0.05)

    # --- start-up -------------------------------------------------------------------------
    def test_rejected_plugins_are_logged_and_the_others_serve(self):
        log = self.server.log_text()
        self.assertRegex(log, r"plugin \S*libtest_crashes_on_load\.so rejected \(crashed\)")
        self.assertRegex(log, r"plugin \S*libtest_abi_major\.so rejected \(abi mismatch\)")
        self.assertIn("plugin 'cpu'", log)
        self.assertTrue(self.http.is_model_ready("plain_conv"))

    def test_one_line_configs_are_completed_from_the_package(self):
        c = self.http.get_model_config("plain_conv")
        self.assertEqual(c["max_batch_size"], 15)  # what the compiled code accepts: 2..15
        self.assertIn("dynamic_batching", c)
        self.assertEqual([(i["name"], i["data_type"], i["dims"]) for i in c["input"]],
                         [("arg11_1", "TYPE_FP32", [3, 16, 16])])
        self.assertEqual([(o["name"], o["data_type"], o["dims"]) for o in c["output"]],
                         [("output0", "TYPE_FP32", [10])])
        c = self.http.get_model_config("packaged")
        self.assertEqual(c["max_batch_size"], 64)
        self.assertEqual([(i["name"], i["dims"]) for i in c["input"]], [("x", [16])])
        c = self.http.get_model_config("multi")  # static: no batching, full shapes
        self.assertEqual(c.get("max_batch_size", 0), 0)
        self.assertNotIn("dynamic_batching", c)
        self.assertEqual([(i["name"], i["data_type"], i["dims"]) for i in c["input"]],
                         [("x", "TYPE_FP32", [4, 8]), ("idx", "TYPE_INT64", [4]), ("z", "TYPE_BF16", [4, 8])])
        self.assertEqual([o["data_type"] for o in c["output"]], ["TYPE_FP32", "TYPE_INT64", "TYPE_BF16", "TYPE_FP16"])
        c = self.http.get_model_config("split")  # an explicit max_batch_size is kept, no batcher added
        self.assertEqual(c["max_batch_size"], 100)
        self.assertNotIn("dynamic_batching", c)
        self.assertEqual(self.http.get_model_metadata("control")["inputs"][0]["name"], "action")

    def test_two_instances_on_one_device_share_one_executor(self):
        log = self.server.log_text()
        self.assertRegex(log, r"model 'pair' version 1: serving .* instances cpu x2")
        self.assertEqual(len(re.findall(r"instance 'pair[_\d]+' of model 'pair' runs on cpu", log)), 2)
        # One set of weights: a swap reaches both instances.
        control(self.http, "swap", "pair", "weights_b.pt", version="b")
        x = self.dyn["inputs"][0].numpy()
        for _ in range(6):
            r = self.http.infer("pair", [http_input("x", x)])
            self.assertEqual(r.get_response()["parameters"]["weights_version"], "b")
            np.testing.assert_allclose(r.as_numpy("mul"), self.dyn["outputs_b"][0].numpy(), rtol=1e-4, atol=1e-5)

    # --- inference ------------------------------------------------------------------------
    def test_plain_package_over_http_and_grpc_matches_eager(self):
        d = fixture_data("plain_conv_dynamic")
        grpc = grpcclient.InferenceServerClient(self.server.grpc_url)
        for x, want in ((d["inputs"][0], d["outputs"][0]), (d["extra_inputs"][0], d["extra_outputs"][0])):
            x = x.contiguous().numpy()
            r = self.http.infer("plain_conv", [http_input("arg11_1", x)])
            np.testing.assert_allclose(r.as_numpy("output0"), want.numpy(), rtol=1e-4, atol=1e-5)
            gi = grpcclient.InferInput("arg11_1", list(x.shape), "FP32")
            gi.set_data_from_numpy(x)
            g = grpc.infer("plain_conv", [gi])
            np.testing.assert_allclose(g.as_numpy("output0"), want.numpy(), rtol=1e-4, atol=1e-5)
            self.assertEqual(g.get_response().parameters["weights_version"].string_param, "package")
        grpc.close()
        # Batch 1 is below the package's range (2..15): padded, and the padding dropped.
        r = self.http.infer("plain_conv", [http_input("arg11_1", d["inputs"][0][:1].contiguous().numpy())])
        np.testing.assert_allclose(r.as_numpy("output0"), d["outputs"][0][:1].numpy(), rtol=1e-4, atol=1e-5)

    def test_a_plain_package_served_under_names_of_one_s_own(self):
        d = fixture_data("plain_conv_dynamic")
        x = d["extra_inputs"][0]
        config = self.http.get_model_config("named")
        self.assertEqual([t["name"] for t in config["input"]], ["image"])
        self.assertEqual([t["name"] for t in config["output"]], ["logits"])
        r = self.http.infer("named", [http_input("image", x.numpy())])
        np.testing.assert_allclose(r.as_numpy("logits"), d["extra_outputs"][0].numpy(), rtol=1e-4, atol=1e-5)
        with self.assertRaises(InferenceServerException) as e:  # the package's own name is not served
            self.http.infer("named", [http_input("arg11_1", x.numpy())])
        self.assertIn("arg11_1", str(e.exception))

    def test_several_dtypes_in_and_out(self):
        d = fixture_data("multi_io")
        x, idx, z = d["inputs"]
        inputs = [http_input("x", x.numpy()), http_input("idx", idx.numpy()),
                  http_input("z", z.float().numpy(), "BF16")]
        r = self.http.infer("multi", inputs)
        np.testing.assert_allclose(r.as_numpy("linear"), d["outputs"][0].numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(r.as_numpy("argmax"), d["outputs"][1].numpy())
        np.testing.assert_allclose(r.as_numpy("to_2"), d["outputs"][3].numpy(), rtol=1e-2, atol=1e-2)
        self.assertEqual(r.as_numpy("to_2").dtype, np.float16)
        # Only the output asked for.
        r = self.http.infer("multi", inputs, outputs=[httpclient.InferRequestedOutput("argmax")])
        self.assertIsNone(r.as_numpy("linear"))
        np.testing.assert_array_equal(r.as_numpy("argmax"), d["outputs"][1].numpy())

    def test_a_batch_beyond_the_package_s_range_is_split(self):
        d = fixture_data("plain_conv_dynamic")
        x = torch.cat([d["extra_inputs"][0]] * 6)[:40].contiguous()  # 40 rows; the package takes 2..15
        want = torch.cat([d["extra_outputs"][0]] * 6)[:40]
        r = self.http.infer("split", [http_input("arg11_1", x.numpy())])
        np.testing.assert_allclose(r.as_numpy("output0"), want.numpy(), rtol=1e-4, atol=1e-5)
        stats = self.stats_once("split", lambda st: int(st.get("inference_count", 0)) >= 40, "the 40 rows")
        self.assertEqual(stats["inference_count"], 40)

    def test_concurrent_clients_are_batched(self):
        x = self.dyn["extra_inputs"][0]
        clients, per_client, errors = 16, 12, []
        results = {}
        done_before = int(self.http.get_inference_statistics("packaged")["model_stats"][0]
                          ["inference_stats"]["success"].get("count", 0))

        def client(c):
            http = httpclient.InferenceServerClient(self.server.http_url)
            try:
                for i in range(per_client):
                    row = (c * per_client + i) % x.shape[0]
                    r = http.infer("packaged", [http_input("x", x[row:row + 1].numpy())])
                    results[(c, i)] = (row, r.as_numpy("mul"), self._reference(r, x[row:row + 1]))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))
            http.close()

        threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(errors, [])
        self.assertEqual(len(results), clients * per_client)
        for row, y, want in results.values():
            np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5)
        stats = self.stats_once("packaged", lambda st: int(st["inference_stats"]["success"].get("count", 0)) >=
                                done_before + clients * per_client, "every request")
        batched = [b for b in stats["batch_stats"] if int(b["batch_size"]) > 1]
        self.assertTrue(batched, f"no batch of more than one request ran: {stats['batch_stats']}")
        self.assertLess(int(stats["execution_count"]), int(stats["inference_count"]))

    def test_a_request_cancelled_while_queued_is_not_run(self):
        # The client cancels a request while it waits for its batch: the server answers it
        # without running it (counted as failed), and the model serves the next one.
        grpc = grpcclient.InferenceServerClient(self.server.grpc_url)
        self.assertTrue(grpc.is_model_ready("queued"))  # the channel is open before the timed part
        x = self.dyn["extra_inputs"][0][:1].contiguous()
        inp = grpcclient.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x.numpy())
        before = self.http.get_inference_statistics("queued")["model_stats"][0]
        answered, results = threading.Event(), []
        call = grpc.async_infer("queued", [inp], callback=lambda result, error: (results.append(error),
                                                                                 answered.set()))
        # Cancel once the server holds it (Triton's pending-request gauge), not before it
        # arrived: only then is there something for the server to cancel.
        pending = re.compile(r'^nv_inference_pending_request_count\{[^}]*model="queued"[^}]*\} 1$', re.M)
        deadline = time.monotonic() + 2  # the batcher holds it for 3 s
        while not pending.search(self.server.metrics()):
            self.assertLess(time.monotonic(), deadline, "the request never reached the server's queue")
            time.sleep(0.01)
        call.cancel()
        self.assertTrue(answered.wait(30), "the cancelled call never returned")
        # (The client answers a cancelled call itself; what the server did is in its statistics.)
        self.assertIn("CANCELLED", str(results[0]))
        stats = self.stats_once(  # the server finishes it when its batch is formed
            "queued", lambda st: int(st["inference_stats"]["fail"]["count"]) >
            int(before["inference_stats"]["fail"]["count"]), "the cancelled request's end")
        self.assertEqual(int(stats["inference_stats"]["fail"]["count"]),
                         int(before["inference_stats"]["fail"]["count"]) + 1)
        for field in ("inference_count", "execution_count"):
            self.assertEqual(int(stats[field]), int(before[field]), f"the cancelled request ran: {field}")
        full = grpcclient.InferInput("x", [64, x.shape[1]], "FP32")  # a whole batch: runs at once
        full.set_data_from_numpy(x.repeat(64, 1).numpy())
        r = grpc.infer("queued", [full])
        np.testing.assert_allclose(r.as_numpy("mul"), self.dyn["extra_outputs"][0][:1].repeat(64, 1).numpy(),
                                   rtol=1e-4, atol=1e-5)
        stats = self.stats_once("queued", lambda st: int(st["execution_count"]) > int(before["execution_count"]),
                                "the full batch")
        self.assertEqual(int(stats["execution_count"]), int(before["execution_count"]) + 1)
        grpc.close()
        self.assertServerReady()

    def test_an_input_in_several_buffers(self):
        # A body sent with chunked transfer encoding reaches the backend as one buffer per
        # chunk; the backend says how many at verbose level.
        d = fixture_data("plain_conv_dynamic")
        x = torch.cat([d["extra_inputs"][0]] * 15)[:100].contiguous()
        want = torch.cat([d["extra_outputs"][0]] * 15)[:100]
        data = x.numpy().tobytes()
        header = json.dumps({"inputs": [{"name": "arg11_1", "shape": list(x.shape), "datatype": "FP32",
                                         "parameters": {"binary_data_size": len(data)}}],
                             "outputs": [{"name": "output0", "parameters": {"binary_data": True}}]}).encode()
        body = header + data
        self.http.update_log_settings({"log_verbose_level": 1})
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.server.http_port, timeout=60)
            conn.request("POST", "/v2/models/split/infer", body=(body[i:i + 8192] for i in range(0, len(body), 8192)),
                         headers={"Inference-Header-Content-Length": str(len(header)),
                                  "Content-Type": "application/octet-stream"}, encode_chunked=True)
            response = conn.getresponse()
            payload = response.read()
            conn.close()
        finally:
            self.http.update_log_settings({"log_verbose_level": 0})
        self.assertEqual(response.status, 200, payload[:500])
        json_size = int(response.getheader("Inference-Header-Content-Length"))
        y = np.frombuffer(payload[json_size:], dtype=np.float32).reshape(100, 10)
        np.testing.assert_allclose(y, want.numpy(), rtol=1e-4, atol=1e-5)
        counts = [int(n) for n in re.findall(r"input 'arg11_1' arrived in (\d+) buffers", self.server.log_text())]
        self.assertTrue(counts and max(counts) > 1, "the input did not arrive in several buffers")

    # --- bad requests ---------------------------------------------------------------------
    def test_bad_requests_get_errors_naming_the_input(self):
        x = self.dyn["inputs"][0].numpy()
        cases = {
            "wrong dtype": ([http_input("x", x.astype(np.float64))], r"x"),
            "wrong shape": ([http_input("x", np.zeros((2, 15), np.float32))], r"x"),
            "missing input": ([], r"x|input"),
            "extra input": ([http_input("x", x), http_input("y", x)], r"y"),
            "bytes": ([self._bytes_input("x", 4)], r"x"),
        }
        for name, (inputs, names) in cases.items():
            with self.subTest(name):
                with self.assertRaises(InferenceServerException) as caught:
                    self.http.infer("packaged", inputs)
                self.assertEqual(caught.exception.status(), "400", str(caught.exception))
                self.assertRegex(caught.exception.message(), names)
        # The same through a model whose inputs are checked against their specs by the backend.
        d = fixture_data("multi_io")
        with self.assertRaises(InferenceServerException) as caught:
            self.http.infer("multi", [http_input("x", d["inputs"][0].numpy()),
                                      http_input("idx", d["inputs"][1].numpy().astype(np.int32)),
                                      http_input("z", d["inputs"][2].float().numpy(), "BF16")])
        self.assertIn("idx", caught.exception.message())
        self.assertServerReady()
        r = self.http.infer("packaged", [http_input("x", x)])
        np.testing.assert_allclose(r.as_numpy("mul"), self._reference(r, self.dyn["inputs"][0]), rtol=1e-4, atol=1e-5)

    def _bytes_input(self, name, rows):
        i = httpclient.InferInput(name, [rows, 16], "BYTES")
        i.set_data_from_numpy(np.array([[b"a"] * 16] * rows, dtype=np.object_))
        return i

    def _reference(self, response, x):
        """Eager outputs of the fixture's MLP with the weights the response names."""
        version = response.get_response()["parameters"]["weights_version"]
        weights = self.dyn["weights_b"] if version == "b" else self.dyn["weights_a"]
        w1, b1, w2, b2 = (weights[k] for k in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"))
        return ((torch.relu(x @ w1.T + b1) @ w2.T + b2) * weights["scale"]).numpy()

    def shared_inputs(self, rows, picks=None):
        d = fixture_data("shared_dims")
        x, mask, pick = (t[rows] for t in d["extra_inputs"])
        if picks is not None:
            pick = torch.tensor(picks)
        # pick has no dimension beyond the batch: Triton takes it as [batch, 1].
        return [http_input("x", x.numpy()), http_input("mask", mask.numpy()),
                http_input("pick", pick.reshape(-1, 1).numpy())], \
            d["extra_outputs"][0][rows].numpy()

    def test_inputs_sharing_a_dimension_must_agree_on_it(self):
        inputs, _ = self.shared_inputs([0, 1, 2])
        short_mask = fixture_data("shared_dims")["extra_inputs"][1][:3, :5].numpy()
        inputs[1] = http_input("mask", short_mask)
        with self.assertRaises(InferenceServerException) as caught:
            self.http.infer("shared", inputs)
        self.assertRegex(caught.exception.message(),
                         r"input 'mask' of model 'shared' has size 5 in dimension 1, but input 'x' has 9 in dimension 1")
        self.assertServerReady()

    def test_a_batch_split_below_the_package_s_range_is_padded(self):
        # 5 rows for a package that takes 3..4: runs of 3 and 2, the second padded to 3.
        rows = [0, 1, 2, 3, 0]
        inputs, want = self.shared_inputs(rows)
        out_name = self.http.get_model_metadata("shared")["outputs"][0]["name"]
        r = self.http.infer("shared", inputs)
        np.testing.assert_allclose(r.as_numpy(out_name), want, rtol=1e-4, atol=1e-5)

    def test_a_run_that_fails_on_one_request_s_values_fails_only_that_request(self):
        # Three one-row requests wait for one batch of 3 (preferred_batch_size); one picks a
        # row beyond the model's table, which only the compiled code sees, and fails its run.
        out_name = self.http.get_model_metadata("shared")["outputs"][0]["name"]
        outcomes = {}

        def client(row, pick):
            http = httpclient.InferenceServerClient(self.server.http_url)
            inputs, want = self.shared_inputs([row], picks=[pick])
            try:
                outcomes[row] = np.allclose(http.infer("shared", inputs).as_numpy(out_name), want,
                                            rtol=1e-4, atol=1e-5)
            except InferenceServerException as e:
                outcomes[row] = e.message()
            http.close()

        picks = fixture_data("shared_dims")["extra_inputs"][2]
        threads = [threading.Thread(target=client, args=(row, int(picks[row]) if row != 1 else 10))
                   for row in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertIs(outcomes[0], True)
        self.assertIs(outcomes[2], True)
        self.assertIsInstance(outcomes[1], str)
        self.assertIn("model 'shared'", outcomes[1])
        # They did run as one batch, which failed, and then one by one.
        self.assertIn("model 'shared': a batch of 3 requests failed", self.server.log_text())
        self.assertServerReady()

    def test_a_bad_request_does_not_poison_its_batch(self):
        # Requests that insist on weights this model does not serve fail in the backend, in
        # the same batches as good ones.
        x = self.dyn["extra_inputs"][0]
        outcomes, lock = [], threading.Lock()

        def client(c):
            http = httpclient.InferenceServerClient(self.server.http_url)
            for i in range(10):
                row = (c + i) % x.shape[0]
                bad = (c + i) % 3 == 0
                params = {"weights_version": "no-such-weights"} if bad else None
                try:
                    r = http.infer("packaged", [http_input("x", x[row:row + 1].numpy())], parameters=params)
                    ok = (True, np.allclose(r.as_numpy("mul")[0], self._reference(r, x[row:row + 1])[0],
                                            rtol=1e-4, atol=1e-5))
                except InferenceServerException as e:
                    ok = (False, "no-such-weights" in e.message())
                with lock:
                    outcomes.append((bad, ok))
            http.close()

        threads = [threading.Thread(target=client, args=(c,)) for c in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(len(outcomes), 120)
        for bad, (answered, right) in outcomes:
            self.assertEqual(answered, not bad)
            self.assertTrue(right)
        self.assertServerReady()

    # --- weights --------------------------------------------------------------------------
    def test_weight_swap_under_load(self):
        x = self.dyn["extra_inputs"][0]
        stop = threading.Event()
        seen, failures, lock = [], [], threading.Lock()

        def client(c):
            http = httpclient.InferenceServerClient(self.server.http_url)
            i = 0
            while not stop.is_set():
                row = (c * 7 + i) % x.shape[0]
                i += 1
                try:
                    r = http.infer("packaged", [http_input("x", x[row:row + 1].numpy())])
                    version = r.get_response()["parameters"]["weights_version"]
                    right = np.allclose(r.as_numpy("mul")[0], self._reference(r, x[row:row + 1])[0],
                                        rtol=1e-4, atol=1e-5)
                    with lock:
                        seen.append((version, right))
                except Exception as e:  # noqa: BLE001
                    with lock:
                        failures.append(repr(e))
            http.close()

        threads = [threading.Thread(target=client, args=(c,)) for c in range(6)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.5)
            before = control(self.http, "status", "packaged")
            out = control(self.http, "process", "packaged", "weights_b.pt", version="b")
            self.assertIn("processed", out["status"])
            self.assertEqual(out["active"], before["active"])  # not active until committed
            time.sleep(0.3)
            out = control(self.http, "commit", "packaged")
            self.assertEqual((out["active"], out["commits"]), ("b", before["commits"] + 1))
            # Requests sent after the commit answered see the new weights.
            r = self.http.infer("packaged", [http_input("x", x[:1].numpy())])
            self.assertEqual(r.get_response()["parameters"]["weights_version"], "b")
            time.sleep(0.3)
            # A bad file is refused, naming what is wrong, and the active weights keep serving.
            for bad, why in (("wrong_shape.pt", r"must have sizes"), ("not_weights.txt", r"not a torch.save"),
                             ("/etc/passwd", r"outside"), ("missing.pt", r"cannot be opened")):
                with self.assertRaises(InferenceServerException) as caught:
                    control(self.http, "swap", "packaged", bad)
                self.assertRegex(caught.exception.message(), why)
            with self.assertRaises(InferenceServerException) as caught:
                control(self.http, "commit", "packaged")  # the refused sets left nothing to commit
            self.assertIn("no processed weights", caught.exception.message())
            # ...and leave a set processed before them pending.
            self.assertIn("processed", control(self.http, "process", "packaged", "weights_a.pt", version="a0")["status"])
            for bad in ("wrong_shape.pt", "missing.pt"):
                with self.assertRaises(InferenceServerException):
                    control(self.http, "process", "packaged", bad)
            self.assertIn("'a0' processed", control(self.http, "status", "packaged")["status"])
            self.assertEqual(control(self.http, "abort", "packaged")["active"], "b")
            out = control(self.http, "swap", "packaged", "weights_a.pt", version="a")
            self.assertEqual(out["active"], "a")
            time.sleep(0.3)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        self.assertEqual(failures, [])
        self.assertTrue(all(right for _, right in seen), "a response did not match the weights it names")
        versions = [v for v, _ in seen]
        self.assertIn("b", versions)
        self.assertIn("a", versions)
        self.assertGreater(len(seen), 30)
        metrics = self.server.metrics()
        self.assertRegex(metrics, r'aotiplug_weight_commits\{model="packaged",version="1"\} [2-9]')

    def test_statistics_reach_triton(self):
        d = fixture_data("mlp")
        before = self.http.get_inference_statistics("static")["model_stats"][0]
        for _ in range(3):
            self.http.infer("static", [http_input("x", d["inputs"][0].numpy())])
        after = self.stats_once("static", lambda st: int(st["inference_stats"]["success"].get("count", 0)) >=
                                int(before["inference_stats"]["success"].get("count", 0)) + 3, "the 3 requests")
        self.assertEqual(int(after["inference_count"]) - int(before.get("inference_count", 0)), 3)
        self.assertEqual(int(after["inference_stats"]["success"]["count"]) -
                         int(before["inference_stats"]["success"].get("count", 0)), 3)
        self.assertGreater(int(after["inference_stats"]["compute_infer"]["ns"]), 0)
        metrics = self.server.metrics()
        self.assertRegex(metrics, r'nv_inference_request_success\{model="static",version="1"\} [1-9]')
        self.assertRegex(metrics, r'nv_inference_exec_count\{model="static",version="1"\} [1-9]')

    # --- lifecycle and configs ------------------------------------------------------------
    def test_unload_and_reload(self):
        d = fixture_data("mlp")
        self.http.unload_model("static")
        deadline = time.monotonic() + 30
        while self.http.is_model_ready("static") and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertFalse(self.http.is_model_ready("static"))
        with self.assertRaises(InferenceServerException):
            self.http.infer("static", [http_input("x", d["inputs"][0].numpy())])
        self.http.load_model("static")
        self.assertTrue(self.http.is_model_ready("static"))
        r = self.http.infer("static", [http_input("x", d["inputs"][0].numpy())])
        np.testing.assert_allclose(r.as_numpy("mul"), d["outputs"][0].numpy(), rtol=1e-4, atol=1e-5)
        # A new version in the repository: a reload serves it (Triton's default policy: the
        # latest), and the old one goes.
        os.makedirs(os.path.join(self.repo, "static", "2"))
        os.link(os.path.join(self.repo, "static", "1", "model.pt2"), os.path.join(self.repo, "static", "2", "model.pt2"))
        self.http.load_model("static")
        self.assertEqual(self.http.get_model_metadata("static")["versions"], ["2"])
        self.assertTrue(self.http.is_model_ready("static", "2"))
        self.assertFalse(self.http.is_model_ready("static", "1"))
        r = self.http.infer("static", [http_input("x", d["inputs"][0].numpy())], model_version="2")
        np.testing.assert_allclose(r.as_numpy("mul"), d["outputs"][0].numpy(), rtol=1e-4, atol=1e-5)
        self.assertIn("version 2", control(self.http, "status", "static")["status"])
        # A changed config reloads the same version: Triton loads the new model before it
        # finalizes the old one, and the old one's going must not take the new one's place
        # in the backend (weights control would no longer find it).
        unloaded = "successfully unloaded 'static' version 2"
        before = self.server.log_text().count(unloaded)
        self.http.load_model("static", config=json.dumps({
            "name": "static", "backend": "aotiplug",
            "parameters": {"run_single_threaded": {"string_value": "true"}}}))
        self.assertTrue(self.http.is_model_ready("static", "2"))
        deadline = time.monotonic() + 30  # the old model is finalized after the load returns
        while self.server.log_text().count(unloaded) == before:
            self.assertLess(time.monotonic(), deadline, "the replaced model was never finalized")
            time.sleep(0.1)
        self.assertIn("version 2", control(self.http, "status", "static")["status"])
        r = self.http.infer("static", [http_input("x", d["inputs"][0].numpy())])
        np.testing.assert_allclose(r.as_numpy("mul"), d["outputs"][0].numpy(), rtol=1e-4, atol=1e-5)
        self.assertServerReady()

    def test_contradicting_configs_are_refused_naming_the_field(self):
        base = {"name": "contradict", "backend": "aotiplug"}
        cases = [
            ({"input": [{"name": "x", "data_type": "TYPE_FP16", "dims": [4, 16]}]}, r"input\[0\] 'x' data_type TYPE_FP16"),
            ({"input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [4, 17]}]}, r"input\[0\] 'x' dims\[1\] is 17"),
            ({"input": [{"name": "y", "data_type": "TYPE_FP32", "dims": [4, 16]}]}, r"'y' is not an input"),
            ({"max_batch_size": 8}, r"max_batch_size is 8, but package .* cannot batch: input 'x' has a static"),
            # (KIND_GPU: Triton itself refuses it on a machine without GPUs, before the backend.)
            ({"instance_group": [{"kind": "KIND_MODEL", "count": 1}],
              "parameters": {"device": {"string_value": "cuda:0"}}},
             r"KIND_MODEL \(device cuda:0\), but package .* was compiled for cpu"),
            ({"parameters": {"devcie": {"string_value": "cpu"}}}, r"'devcie' is not a parameter"),
        ]
        for extra, message in cases:
            with self.subTest(extra=extra):
                with self.assertRaises(InferenceServerException) as caught:
                    self.http.load_model("contradict", config=json.dumps({**base, **extra}))
                self.assertRegex(caught.exception.message(), message)
                self.assertFalse(self.http.is_model_ready("contradict"))
        self.http.load_model("contradict", config=json.dumps({**base, "instance_group": [{"kind": "KIND_MODEL"}]}))
        self.assertTrue(self.http.is_model_ready("contradict"))
        self.http.unload_model("contradict")
        # A refused load leaves the server live, its other models serving (Triton's strict
        # readiness counts the refused model, so /v2/health/ready says no meanwhile).
        self.assertTrue(self.http.is_server_live())
        d = fixture_data("mlp")
        r = self.http.infer("static", [http_input("x", d["inputs"][0].numpy())])
        np.testing.assert_allclose(r.as_numpy("mul"), d["outputs"][0].numpy(), rtol=1e-4, atol=1e-5)


class TwoServers(unittest.TestCase):
    """A weights rollout over two replicas: process on both, then commit on both; a client
    that names the weights it wants is never answered by the other ones."""

    def test_two_phase_rollout(self):
        dyn = fixture_data("dynamic_batch")
        with tempfile.TemporaryDirectory(prefix="aotiplug-triton-2-") as tmp:
            repo = os.path.join(tmp, "repo")
            add_model(repo, "m", "dynamic_batch", files={"v2.pt": dyn["weights_b"]})
            os.makedirs(os.path.join(repo, "control", "1"))
            with open(os.path.join(repo, "control", "config.pbtxt"), "w") as f:
                f.write(ONE_LINE + 'parameters { key: "weights_control" value { string_value: "true" } }\n')
            servers = [TritonServer(repo, backend_dir=BACKENDS, plugin_dir=os.path.join(BUILD, "plugins"),
                                    log_path=os.path.join(BUILD, "tests", "triton", f"replica-{i}.log"),
                                    env={"XDG_CACHE_HOME": os.path.join(tmp, "cache")}) for i in range(2)]
            try:
                for s in servers:
                    s.start()
                clients = [httpclient.InferenceServerClient(s.http_url) for s in servers]
                x = dyn["inputs"][0].numpy()

                def ask(client, version=None):
                    params = {"weights_version": version} if version else None
                    r = client.infer("m", [http_input("x", x)], parameters=params)
                    return r.get_response()["parameters"]["weights_version"], r.as_numpy("mul")

                # Phase 1: every replica processes v2; all still answer with the package's.
                for c in clients:
                    self.assertIn("processed", control(c, "process", "m", "v2.pt", version="v2")["status"])
                for c in clients:
                    self.assertEqual(ask(c)[0], "package")
                # Between the commits, a client pinned to v2 is refused by the replica not yet
                # switched (UNAVAILABLE: try another) and served by the one that is.
                self.assertEqual(control(clients[0], "commit", "m")["active"], "v2")
                version, y = ask(clients[0], "v2")
                self.assertEqual(version, "v2")
                np.testing.assert_allclose(y, dyn["outputs_b"][0].numpy(), rtol=1e-4, atol=1e-5)
                with self.assertRaises(InferenceServerException) as caught:
                    ask(clients[1], "v2")
                self.assertIn("serves weights version 'package'", caught.exception.message())
                self.assertEqual(ask(clients[1], "package")[0], "package")
                # Phase 2 done: both serve v2.
                self.assertEqual(control(clients[1], "commit", "m")["active"], "v2")
                for c in clients:
                    version, y = ask(c, "v2")
                    np.testing.assert_allclose(y, dyn["outputs_b"][0].numpy(), rtol=1e-4, atol=1e-5)
                # A replica that cannot process aborts the rollout everywhere: nothing changes.
                for c in clients:
                    with self.assertRaises(InferenceServerException):
                        control(c, "process", "m", "missing.pt")
                    self.assertEqual(control(c, "abort", "m")["active"], "v2")
                for c in clients:
                    c.close()
            finally:
                for s in servers:
                    s.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
