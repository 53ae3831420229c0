"""torchrec_nas.train."""
