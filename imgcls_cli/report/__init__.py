"""Numbers and pictures from predictions: metrics (accuracy, per-class scores, calibration)
and plots (training curves, confusion matrices, image grids). Plain data in, files out."""
