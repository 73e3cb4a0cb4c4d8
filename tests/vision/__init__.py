"""Tests of the vision core."""
