"""`edgelite bench` through click's CliRunner: exit codes and the messages a user sees."""

import json

import pytest
from click.testing import CliRunner

from edgelite.cli import cli


def bench(*args):
    return CliRunner().invoke(cli, ["bench", *map(str, args)])


def test_bench_writes_json_csv_and_plot_and_picks(bench_models, bench_data, tmp_path):
    out = tmp_path / "b"
    result = bench(bench_models["tflite_float32"], bench_models["tflite_int8"], "--data", bench_data,
                   "--runs", 5, "--warmup", 1, "--json", f"{out}.json", "--csv", f"{out}.csv",
                   "--plot", f"{out}.png", "--pick", "--max-drop", 100)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("models tiny_...; batch 1;")  # the names' shared start, once
    assert "│ int8.tflite " in result.stdout and "p50 ms" in result.stdout
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["pick"]["name"] in ("tiny_float32.tflite", "tiny_int8.tflite")
    assert f"pick: {data['pick']['name']} at 1 thread(s)" in result.stdout
    assert out.with_suffix(".png").stat().st_size > 0
    assert len(out.with_suffix(".csv").read_text().splitlines()) == 3


def test_a_garbage_model_fails_its_row_and_the_exit_code(bench_models, tmp_path):
    result = bench(bench_models["tflite_float32"], bench_models["garbage"], "--runs", 3,
                   "--json", tmp_path / "b.json")
    assert result.exit_code == 1
    assert "error: garbage.tflite x1: ModelFileError: garbage.tflite:" in result.stderr
    assert result.stderr.strip().endswith("error: 1 of 2 rows failed")
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert rows[0]["error"] is None and rows[0]["runs"] == 3


def test_a_file_without_metadata_is_benched_with_notes(bench_models):
    result = bench(bench_models["plain"], "--runs", 2)
    assert result.exit_code == 0, result.output
    assert "note: plain.tflite: no labels in the model; named them class_0, class_1, ..." in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--pick"], "error: --pick needs accuracy: pass --data DIR with one sub-folder per class"),
    (["--runs", "3", "--seconds", "1"], "error: give --runs or --seconds, not both"),
    (["--threads", "1,x"], "error: --threads expects a comma list of whole numbers like 1,2,4, got '1,x'"),
    (["--threads", "2,2"], "error: thread counts repeat: 2,2"),
])
def test_bad_options_exit_1_with_one_line(bench_models, args, message):
    result = bench(bench_models["tflite_float32"], *args)
    assert result.exit_code == 1
    assert result.stderr.strip() == message


def test_pick_with_no_room_keeps_the_reference_accuracy(bench_models, bench_data, tmp_path):
    result = bench(bench_models["tflite_int8"], "--data", bench_data, "--reference", bench_models["tflite_float32"],
                   "--runs", 2, "--pick", "--max-drop", 0, "--json", tmp_path / "b.json")
    assert result.exit_code == 0, result.output
    pick = json.loads((tmp_path / "b.json").read_text())["pick"]
    assert pick["accuracy"] >= pick["reference_accuracy"] == pick["min_accuracy"]


def test_end_to_end_rows_time_the_files_as_they_are(bench_models, bench_data, tmp_path):
    from PIL import Image

    from edgelite.bench.schema import END_TO_END_KEYS

    big = tmp_path / "big"
    (big / "red").mkdir(parents=True)
    for i, source in enumerate(sorted((bench_data / "red").glob("*.jpg"))):
        Image.open(source).resize((400, 300)).save(big / "red" / f"photo_{i}.jpg", quality=90)
    result = bench(bench_models["tflite_int8"], bench_models["onnx_float32"], "--data", big, "--runs", 3,
                   "--warmup", 0, "--end-to-end", "--json", tmp_path / "b.json", "--csv", tmp_path / "b.csv")
    assert result.exit_code == 0, result.output
    assert "e2e ms" in result.stdout and "folder img/s" in result.stdout
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["options"]["end_to_end"] is True
    for row in data["rows"]:
        assert set(END_TO_END_KEYS) <= set(row)
        assert row["end_to_end_images"] == 4
        assert row["source_megapixels"] == {"min": 0.12, "p50": 0.12, "max": 0.12}
        assert row["end_to_end_ms"]["min"] <= row["end_to_end_ms"]["p50"] <= row["end_to_end_ms"]["max"]
        assert row["folder_ips"] > 0 and row["folder_batch"] == 8
    header = (tmp_path / "b.csv").read_text().splitlines()[0].split(",")
    assert {"end_to_end_p50_ms", "source_mp_p50", "folder_ips"} <= set(header)


def test_end_to_end_needs_data(bench_models):
    result = bench(bench_models["tflite_int8"], "--end-to-end")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: --end-to-end needs real files: pass --data DIR"


def test_unreadable_data_files_are_skipped_and_named(bench_models, bench_data, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(bench_data, data)
    (data / "red" / "broken.jpg").write_text("not a photo")
    result = bench(bench_models["tflite_int8"], "--data", data, "--runs", 2, "--warmup", 0, "--end-to-end",
                   "--json", tmp_path / "b.json")
    assert result.exit_code == 0, result.output
    assert f"note: skipped {data / 'red' / 'broken.jpg'}: not an image Pillow can read" in result.stderr
    row = json.loads((tmp_path / "b.json").read_text())["rows"][0]
    assert row["unreadable_images"] == [f"{data / 'red' / 'broken.jpg'}: not an image Pillow can read"]
    assert row["eval_images"] == row["end_to_end_images"] == 12
