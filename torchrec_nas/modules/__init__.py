"""torchrec_nas.modules."""
