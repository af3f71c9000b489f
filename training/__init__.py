"""The training run: resolved config, optimizer, loop, callbacks and final evaluation."""
