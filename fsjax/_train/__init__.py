"""Training the finite network with online large-batch SGD."""
