"""seqlab.lm."""
