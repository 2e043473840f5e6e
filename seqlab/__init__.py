"""seqlab: Arabic web text -> normalized Parquet corpus -> searched RNN scorer and GPT-2 generator on Ray."""

__version__ = "0.1.0"
