"""Quality metrics: conditional accuracy and Fréchet distance in a classifier's feature space."""
