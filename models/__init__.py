"""Model side: a registry of Keras classifier families, heads, weights and precision."""
