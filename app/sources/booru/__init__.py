"""Booru sites behind one Protocol (base.py), one module per family, and a registry of sites."""
