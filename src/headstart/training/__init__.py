"""Training: the fine-tuning loop and its callbacks, checkpoints, the freeze-boundary cache, heads,
calibration, class balance, adapters (LoRA), devices and precision, several processes."""
