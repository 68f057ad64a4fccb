"""The JSON that `edgelite bench --json FILE` writes (schema "edgelite.bench/1").

Top level:

    schema            "edgelite.bench/1"
    edgelite_version  version of edgelite that measured
    created           ISO 8601 time (UTC) the run started
    machine           cpu, cpu_flags (SIMD flags that matter: avx2, fma, avx512_vnni...),
                      logical_cpus, usable_cpus, architecture, os, python, memory_mb,
                      loadavg (1, 5, 15 min at the start), loadavg_end
    versions          {package: version} of numpy, ai-edge-litert, onnxruntime, tensorflow...
    options           threads, batch, runs (null with seconds), seconds, warmup, data, limit,
                      reference, end_to_end
    reference         the model predictions are compared with: name, path, kind, accuracy;
                      null without --data or when it failed
    pick              with --pick: max_drop (accuracy points), reference_accuracy,
                      min_accuracy, name, path, threads, latency_p50_ms, accuracy;
                      name is null (and error says why) when nothing is within the budget
    notes             what the run left out and why (e.g. no Keras row without TensorFlow)
    rows              one object per (model, thread count), in run order:

Row:

    name, path        the model file
    kind              "artifact" (.tflite/.onnx run by edgelite.runtime) or "keras"
                      (the checkpoint run by TensorFlow: the baseline)
    format            "tflite", "onnx" or "keras"
    precision         float32, float16, dynamic, int8 (from the edgelite metadata;
                      null for files without it)
    float_layers      int8 artifacts built by `convert --min-agreement`: the layers kept
                      in float (empty for every other row)
    backend           "litert", "tflite-runtime", "tf.lite", "onnxruntime" or "tensorflow"
    backend_version   its version
    threads, batch    interpreter threads and images per call
    size_bytes        file size (a SavedModel folder: all its files)
    input             shape (-1: dynamic), dtype, height, width, and source: "data"
                      (real images) or "random" (uniform 0-255 pixels of the input's size)
    labels            class names (class_i when the file records none)
    assumptions       what the runtime had to assume for a file without metadata
    import_s          seconds to import the runtime (or TensorFlow) in a fresh process
    load_s            seconds to load the model (and, for the runtime, its interpreter)
    first_inference_s seconds of the first prediction
    cold_start_s      import_s + load_s + first_inference_s, plus the first image's
                      preprocessing with --data: what an app pays before its first answer
                      (Python's own start-up not included)
    process_wall_s    the worker process's whole life, Python start-up and evaluation
                      included
    runs              timed inferences
    latency_ms        mean, std, min, p50, p90, p95, p99, max of one call (batch images),
                      preprocessing excluded, the runtime's input quantization included
    samples_ms        every timed call, in order (left out of the CSV)
    throughput_ips    images per second over the timed calls: batch * runs / total time
    preprocess_ms     the same statistics for one image's decode + resize, timed apart
    preprocess_source "data", or "synthetic 640x480 JPEG" without --data
    rss_idle_mb       resident memory of the worker after importing the runtime, before
                      loading (the idle process)
    peak_rss_mb       the worker's peak resident memory through load, first prediction and
                      the timed runs (read before the --data evaluation, which runs larger batches)
    rss_growth_mb     peak_rss_mb - rss_idle_mb: what loading and running the model cost
    loadavg           os.getloadavg() when the row finished (the machine may be shared)
    accuracy          top-1 accuracy on the labelled --data images (null without data or
                      when the labels do not match the folder names)
    agreement         fraction of images with the same top-1 class as the reference
    eval_images       images predicted; labelled_images: those with a known class
    unreadable_images why each --data file that could not be read was left out (missing,
                      not an image, truncated...); every figure above is over the others

With --end-to-end (needs --data), a row also has:

    end_to_end_ms     statistics of decode + resize + inference of one data file as it is,
                      one image at a time (the first end_to_end_images files)
    source_megapixels min, p50, max pixel count of those files, in megapixels
    folder_ips        images per second through Model.predict_iter over the same files
                      (decoding ahead in threads while the model runs batches of
                      folder_batch); null for the Keras row
    error             null, or one line saying why this row could not be measured; the
                      measured fields are then absent
"""

SCHEMA_VERSION = "edgelite.bench/1"

TOP_LEVEL_KEYS = ("schema", "edgelite_version", "created", "machine", "versions", "options", "reference",
                  "pick", "notes", "rows")
ROW_KEYS = ("name", "path", "kind", "format", "precision", "float_layers", "backend", "backend_version", "threads",
            "batch", "size_bytes", "input", "labels", "assumptions", "import_s", "load_s", "first_inference_s",
            "cold_start_s", "process_wall_s", "runs", "latency_ms", "samples_ms", "throughput_ips",
            "preprocess_ms", "preprocess_source", "rss_idle_mb", "peak_rss_mb", "rss_growth_mb", "loadavg",
            "accuracy", "agreement", "eval_images", "labelled_images", "error")
# Keys every row has, failed or not.
ERROR_ROW_KEYS = ("name", "path", "kind", "threads", "batch", "size_bytes", "process_wall_s", "accuracy",
                  "agreement", "eval_images", "labelled_images", "error")
END_TO_END_KEYS = ("end_to_end_ms", "end_to_end_images", "source_megapixels", "folder_ips", "folder_batch")
STAT_KEYS = ("mean", "std", "min", "p50", "p90", "p95", "p99", "max")
