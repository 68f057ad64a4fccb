"""The Open Inference Protocol's versioned paths (/v2/models/NAME/versions/V/...) next to the unversioned ones."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.serve.conftest import jpeg_bytes


@pytest.fixture(scope="module")
def client(served):
    client = triton.InferenceServerClient(url=served.url.removeprefix("http://"), network_timeout=60)
    yield client
    client.close()


def _image() -> triton.InferInput:
    tensor = triton.InferInput("image", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([jpeg_bytes("green")], dtype=object))
    return tensor


@pytest.mark.parametrize("version", ["", "1"])
def test_tritonclient_with_and_without_a_version(client, int8_name, version):
    assert client.is_model_ready(int8_name, model_version=version)
    meta = client.get_model_metadata(int8_name, model_version=version)
    assert meta["name"] == int8_name and meta["versions"] == ["1"]
    scores = client.infer(int8_name, [_image()], model_version=version).as_numpy("scores")
    assert scores.shape == (1, 3) and meta["edgelite"]["labels"][int(scores.argmax())] == "green"


def test_both_forms_give_the_same_scores(client, int8_name):
    plain = client.infer(int8_name, [_image()]).as_numpy("scores")
    versioned = client.infer(int8_name, [_image()], model_version="1").as_numpy("scores")
    np.testing.assert_array_equal(plain, versioned)


@pytest.mark.parametrize("method, tail", [("GET", ""), ("GET", "/ready"), ("POST", "/infer")])
def test_an_unknown_version_is_404_naming_the_versions(served, int8_name, method, tail):
    response = httpx.request(method, f"{served.url}/v2/models/{int8_name}/versions/7{tail}", timeout=30,
                             json={"inputs": []})
    assert response.status_code == 404
    assert response.json() == {"error": f"model '{int8_name}' has no version '7'; its versions: '1'"}


def test_tritonclient_sees_the_unknown_version(client, int8_name):
    assert not client.is_model_ready(int8_name, model_version="2")
    with pytest.raises(InferenceServerException, match="has no version '2'; its versions: '1'"):
        client.infer(int8_name, [_image()], model_version="2")
