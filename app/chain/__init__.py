"""The chain core: what Portcullis reads from, and calls on, an EVM chain."""
