"""Augmentation: the presets' layers and the data-aware policy (--augment auto)."""
