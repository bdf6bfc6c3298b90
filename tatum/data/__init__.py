"""Datasets: sources of MIDI collections, token shards, and training examples drawn from them."""
