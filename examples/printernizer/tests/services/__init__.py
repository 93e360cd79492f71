"""Its services' tests."""
