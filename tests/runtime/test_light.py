"""The runtime must work where TensorFlow and Keras are not installed."""

import json
import subprocess
import sys
import textwrap

from tests.conftest import artifact

BLOCK_TENSORFLOW = textwrap.dedent("""
    import sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "keras", "tf_keras", "tflite_runtime"):
                raise ImportError("blocked by the test: " + name)
    sys.meta_path.insert(0, Block())
""")


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_importing_the_runtime_imports_no_tensorflow():
    result = run_python("import edgelite.runtime, edgelite.cli, sys; print([m for m in sys.modules "
                        "if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras', 'ray', 'pyarrow')])")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_predict_and_info_work_with_tensorflow_blocked(artifacts, color_data):
    image = next((color_data / "validation" / "blue").iterdir())
    code = BLOCK_TENSORFLOW + textwrap.dedent(f"""
        import json
        from edgelite.runtime import load
        out = {{}}
        for path in {[str(a.path) for a in artifacts.artifacts]!r}:
            out[path] = load(path).predict({str(image)!r}, top_k=1)[0].label
        print(json.dumps(out))
    """)
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    labels = json.loads(result.stdout)
    assert len(labels) == 6
    assert set(labels.values()) == {"blue"}
