"""Protocols that are not a LightningModule: the linear probe on cached frozen features."""
