"""Printernizer's package of the same name (a stand-in)."""
