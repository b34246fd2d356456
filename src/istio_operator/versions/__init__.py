"""versions layer."""
