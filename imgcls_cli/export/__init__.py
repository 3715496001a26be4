"""A run's model in other formats: the writers (SavedModel, TFLite, ONNX) and the runtimes
that run each format, for the parity check and for predict. The `imgcls export` command
itself is commands/export.py."""
