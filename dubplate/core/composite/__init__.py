"""Putting a generated face crop back into the full-resolution plate, inside a soft matte."""
