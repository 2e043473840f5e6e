"""seqlab.tune."""
