"""torchrec_nas.launch."""
