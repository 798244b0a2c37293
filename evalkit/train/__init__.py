"""Fine-tuning with diversity-preserving losses (GEM, TOFU) next to CE, for end-to-end comparisons."""
