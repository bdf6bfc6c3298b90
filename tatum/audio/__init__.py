"""Audio out (FluidSynth rendering) and in (basic-pitch transcription), and the pipeline between them."""
