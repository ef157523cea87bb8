"""Registry of embedding models: open_clip image and text towers, timm, weight-free baselines."""
