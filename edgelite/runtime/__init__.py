"""The light runtime: run edgelite artifacts with numpy, Pillow and LiteRT or onnxruntime.

Never imports TensorFlow or Keras.

    from edgelite.runtime import load
    model = load("model_int8.tflite")
    model.predict("photo.jpg")  # [Prediction(label='shoes', score=0.93, index=6), ...]
"""

from edgelite.runtime.metadata import ArtifactMetadata
from edgelite.runtime.model import Model, Prediction, Predictions, load
from edgelite.runtime.folder import list_images
from edgelite.runtime.preprocess import PreparedImage, load_image, preprocess, scale_pixels

__all__ = ["ArtifactMetadata", "Model", "Prediction", "Predictions", "PreparedImage", "load", "list_images",
           "load_image", "preprocess", "scale_pixels"]
