#!/usr/bin/env python3
"""Build small Keras CNNs and convert them to every TFLite flavour we care about.

Run with a Python that has TensorFlow (e.g. /work/venv/bin/python):

    python make_tflite_models.py --out /work/pi-models [--data DIR] [--epochs 2]

Writes into --out:
  <model>__<variant>.tflite   one file per (model, converter variant)
  ref_inputs.npz              float32 test images (N,64,64,3), 0..1 and 0..255
  manifest.json               converter settings, conversion errors, x86 outputs
                              are produced separately by run_tflite.py

Models:
  cnn          Conv2D+MaxPool x2, Flatten, Dense(32), Dense(10); input floats 0..1
  cnn_rescale  same but with keras.layers.Rescaling(1/255) inside; input 0..255

Variants (see VARIANTS below) cover float32, float16, dynamic-range (plus the
candidate converter flags for old runtimes) and full-integer int8.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

SIZE = 64
N_REF = 16


def load_images(root: Path, split: str, limit_per_class: int | None):
    from PIL import Image

    classes = sorted(p.name for p in (root / split).iterdir() if p.is_dir())
    xs, ys = [], []
    for ci, c in enumerate(classes):
        files = sorted((root / split / c).glob("*.jpg"))
        if limit_per_class:
            files = files[:limit_per_class]
        for f in files:
            with Image.open(f) as im:
                im = im.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
                xs.append(np.asarray(im, dtype=np.uint8))
                ys.append(ci)
    return np.stack(xs), np.array(ys, dtype=np.int64), classes


def build(kind: str):
    import keras
    from keras import layers

    inp = keras.Input((SIZE, SIZE, 3), name="image")
    x = inp
    if kind == "cnn_rescale":
        x = layers.Rescaling(1.0 / 255.0)(x)
    x = layers.Conv2D(8, 3, activation="relu", padding="same")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(16, 3, activation="relu", padding="same")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(32, activation="relu")(x)
    out = layers.Dense(10, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name=kind)


# name -> dict of converter attributes; special keys: "opt", "f16", "rep", "io"
VARIANTS = {
    "f32": {},
    "f16": {"opt": True, "f16": True},
    "drq": {"opt": True},
    "drq_nopc_dense": {"opt": True,
                       "_experimental_disable_per_channel_quantization_for_dense_layers": True},
    "drq_nopc": {"opt": True, "_experimental_disable_per_channel": True},
    "drq_legacy_drq": {"opt": True, "experimental_new_dynamic_range_quantizer": False},
    "drq_old_quantizer": {"opt": True, "experimental_new_quantizer": False},
    "drq_lowbit_qat": {"opt": True, "_experimental_low_bit_qat": True},
    "drq_single_batch": {"opt": True,
                         "_experimental_default_to_single_batch_in_tensor_list_ops": True},
    "int8_fio": {"opt": True, "rep": True},
    "int8_u8io": {"opt": True, "rep": True, "io": "uint8"},
    "int8_i8io": {"opt": True, "rep": True, "io": "int8"},
}


def convert(model, variant: str, rep_images: np.ndarray):
    import tensorflow as tf

    spec = VARIANTS[variant]
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if spec.get("opt"):
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if spec.get("f16"):
        conv.target_spec.supported_types = [tf.float16]
    if spec.get("rep"):
        def rep():
            for i in range(len(rep_images)):
                yield [rep_images[i:i + 1]]
        conv.representative_dataset = rep
    if spec.get("io"):
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        dt = {"uint8": tf.uint8, "int8": tf.int8}[spec["io"]]
        conv.inference_input_type = dt
        conv.inference_output_type = dt
    for k, v in spec.items():
        if k not in ("opt", "f16", "rep", "io"):
            if not hasattr(conv, k):
                raise AttributeError(f"converter has no attribute {k}")
            setattr(conv, k, v)
    return conv.convert()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/work/pi-models")
    ap.add_argument("--data", default="/work/shared/datasets/clothing-small")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--per-class", type=int, default=120,
                    help="training images per class (speed)")
    args = ap.parse_args(argv)

    import keras
    import tensorflow as tf

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)

    t0 = time.time()
    xtr, ytr, classes = load_images(Path(args.data), "train", args.per_class)
    xva, yva, _ = load_images(Path(args.data), "validation", None)
    print(f"loaded {len(xtr)} train / {len(xva)} val images in {time.time()-t0:.1f}s")
    rng = np.random.default_rng(0)
    ref_idx = rng.choice(len(xva), N_REF, replace=False)
    ref255 = xva[ref_idx].astype(np.float32)
    np.savez(out / "ref_inputs.npz", x01=ref255 / 255.0, x255=ref255,
             labels=yva[ref_idx], classes=np.array(classes))
    rep_idx = rng.choice(len(xtr), 64, replace=False)

    manifest = {"tensorflow": tf.__version__, "keras": keras.__version__,
                "classes": classes, "models": {}}
    for kind in ("cnn", "cnn_rescale"):
        scale = 1.0 if kind == "cnn_rescale" else 1.0 / 255.0
        model = build(kind)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(xtr.astype(np.float32) * scale, ytr, epochs=args.epochs,
                  batch_size=32, verbose=0, shuffle=True)
        _, acc = model.evaluate(xva.astype(np.float32) * scale, yva, verbose=0)
        keras_out = model.predict(ref255 * scale, verbose=0)
        np.save(out / f"{kind}__keras_out.npy", keras_out)
        rep = xtr[rep_idx].astype(np.float32) * scale
        entry = {"input_scale": scale, "val_acc_keras": round(float(acc), 4),
                 "variants": {}}
        for v in VARIANTS:
            path = out / f"{kind}__{v}.tflite"
            t1 = time.time()
            try:
                blob = convert(model, v, rep)
                path.write_bytes(blob)
                entry["variants"][v] = {"file": path.name, "bytes": len(blob),
                                        "seconds": round(time.time() - t1, 2)}
            except Exception as e:  # record, keep going
                if path.exists():
                    path.unlink()
                msg = f"{type(e).__name__}: {e}".splitlines()
                entry["variants"][v] = {"error": " | ".join(msg[:3])}
            print(kind, v, entry["variants"][v], flush=True)
        manifest["models"][kind] = entry
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"done in {time.time()-t0:.1f}s -> {out}")


if __name__ == "__main__":
    sys.exit(main())
