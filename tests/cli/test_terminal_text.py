"""Nothing from a model file reaches the terminal raw: no rich markup, no control characters or escapes."""

import csv
import io
import json

import pytest
from click.testing import CliRunner

from edgelite.cli import cli
from edgelite.cli.common import json_line, safe_text, table
from edgelite.runtime.metadata import METADATA_KEY, ArtifactMetadata
from edgelite.runtime.tflite_format import read_tflite
from tests.conftest import artifact

MARKUP = "[red]x[/red]"
ESCAPE = "\x1b[31mevil\x1b[0m"
BIDI = "left\u202eright"
LABELS = (MARKUP, ESCAPE, BIDI)


@pytest.fixture(scope="module")
def hostile_model(artifacts, tmp_path_factory):
    """The float32 artifact with labels that are markup, an ANSI escape and a bidi override."""
    from edgelite.convert.tflite import embed_metadata

    source = artifact(artifacts, "tflite", "float32")
    document = json.loads(read_tflite(source.read_bytes()).metadata[METADATA_KEY])
    metadata = ArtifactMetadata(**{**document, "labels": LABELS})
    path = tmp_path_factory.mktemp("hostile") / "hostile\x1b[2J.tflite"
    path.write_bytes(embed_metadata(source.read_bytes(), metadata))
    return path


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.mark.parametrize("command", [
    ["predict", "{model}", "{image}", "--top-k", "3"],
    ["predict", "{model}", "{image}", "--top-k", "3", "--csv"],
    ["predict", "{model}", "{image}", "--top-k", "3", "--jsonl"],
    ["predict", "{model}", "{image}", "--top-k", "3", "--json"],
    ["info", "{model}"],
    ["info", "{model}", "--json"],
], ids=["predict table", "predict csv", "predict jsonl", "predict json", "info table", "info json"])
def test_labels_from_a_file_never_put_a_raw_escape_on_the_terminal(hostile_model, photo, command):
    result = run(*(part.format(model=hostile_model, image=photo) for part in command))
    assert result.exit_code == 0, result.output
    for stream in (result.stdout, result.stderr):
        assert "\x1b" not in stream and "\u202e" not in stream and "\x9b" not in stream


@pytest.mark.parametrize("command", [["predict", "{model}", "{image}", "--top-k", "3"], ["info", "{model}"],
                                     ["predict", "{model}", "{image}", "--top-k", "3", "--csv"]],
                         ids=["predict table", "info table", "predict csv"])
def test_markup_in_a_label_is_shown_literally(hostile_model, photo, command):
    result = run(*(part.format(model=hostile_model, image=photo) for part in command))
    assert result.exit_code == 0, result.output
    assert MARKUP[:12] in result.stdout  # the table cuts labels at 15 characters: "[red]x[/red]" fits
    assert "\\x1b[31mevil" in result.stdout or "\\x1b[31" in result.stdout  # the escape, spelled out


@pytest.mark.parametrize("flag", ["--json", "--jsonl"])
def test_json_output_keeps_the_labels_exactly(hostile_model, photo, flag):
    result = run("predict", hostile_model, photo, "--top-k", "3", flag)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout) if flag == "--json" else json.loads(result.stdout.splitlines()[0])
    predictions = data["results"][0]["predictions"] if flag == "--json" else data["predictions"]
    assert sorted(p["label"] for p in predictions) == sorted(LABELS)


def test_info_json_keeps_the_labels_exactly(hostile_model):
    result = run("info", hostile_model, "--json")
    assert json.loads(result.stdout)["metadata"]["labels"] == list(LABELS)


@pytest.mark.parametrize("data", [
    {"label": ESCAPE}, {"label": BIDI}, {"label": "caf\u00e9 \x7f \x9b \U000e0041"}, {"a": ["\n", "\t"]},
])
def test_json_line_escapes_what_a_terminal_acts_on_and_parses_back(data):
    line = json_line(data)
    assert line.isprintable() and "\n" not in line
    assert json.loads(line) == data
    if "caf" in str(data):
        assert "café" in line  # readable text stays as it is


def test_csv_cells_are_terminal_safe(hostile_model, photo):
    result = run("predict", hostile_model, photo, "--top-k", "3", "--csv")
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert {rows[1][1], rows[1][3], rows[1][5]} == {safe_text(label) for label in LABELS}


def test_table_headers_and_titles_are_text_not_markup(capsys):
    table(f"title {ESCAPE}", ["class", MARKUP, ESCAPE], [["a", MARKUP, ESCAPE]])
    shown = capsys.readouterr().out
    assert "\x1b" not in shown
    assert shown.count(MARKUP) == 2


def test_an_error_naming_file_content_is_escaped(artifacts, tmp_path):
    from edgelite.convert.tflite import embed_metadata

    class Raw:
        @staticmethod
        def to_json():
            return json.dumps({"labels": ["a", "b", "c"], "input_height": 32, "input_width": 32,
                               "precision": "\x1b[31m[bold]int4"})

    path = tmp_path / "model.tflite"
    path.write_bytes(embed_metadata(artifact(artifacts, "tflite", "float32").read_bytes(), Raw()))
    result = run("info", path)
    assert result.exit_code == 1
    assert "\x1b" not in result.stderr
    assert "unknown precision '\\x1b[31m[bold]int4'" in result.stderr
