"""Training machinery that train, finetune and lr-find share: devices and tf.distribute,
the training loop, batch-normalization statistics, class weights and the run's logs."""
