"""The transformer, its presets and checkpoints."""
