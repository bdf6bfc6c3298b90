"""Generation: sampling, constraints, the pass engine and the tasks built on it."""
