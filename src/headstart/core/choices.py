"""The choices of options every fit shares, declared once below the modules that act on them (the training
loop's devices and class balance, the regression task), so that FitConfig checks them without importing those."""

PRECISIONS = ("auto", "fp32", "bf16")  # headstart.training.devices
BALANCE_MODES = ("auto", "none", "weights", "sampler")  # headstart.training.balance
REGRESSION_LOSSES = ("mse", "huber")  # headstart.tasks.regression: fine-tuning a regression's loss
