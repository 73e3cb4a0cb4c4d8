"""Kedro dataset adapters over the core readers and stores."""
