"""Reports generated from pipeline outputs (the results snapshot; later the paper's files)."""
