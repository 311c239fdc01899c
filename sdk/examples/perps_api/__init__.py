"""A sample perpetual-futures venue API protected by portcullis-resource (docs/RESOURCE_SERVER.md)."""
