"""torchrec_nas.search."""
