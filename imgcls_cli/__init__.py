"""imgcls: image classification with TensorFlow and Keras, from the command line."""

__version__ = "0.1.0"
