"""edgelite: take a Keras image classifier from training to a device."""

__version__ = "0.1.0"
