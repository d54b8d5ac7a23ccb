"""PyTorch definitions, one file per architecture."""
