"""Data: sources (TFDS, folder, embedded digits) behind one interface, and the tf.data pipeline."""
