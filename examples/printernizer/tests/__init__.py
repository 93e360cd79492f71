"""Its tests (a stand-in)."""
