"""LightningModules: what is trained for each task kind (classification, multi-label, detection)."""
