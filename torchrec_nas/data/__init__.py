"""torchrec_nas.data."""
