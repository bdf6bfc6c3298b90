"""Evaluation: symbolic music metrics, the genre / pianist / real-music classifiers, ImprovNet's
evaluation protocols (`protocols`, written out by `report`: `tatum evaluate`) and classifier
reranking of generated candidates (`rerank`)."""
