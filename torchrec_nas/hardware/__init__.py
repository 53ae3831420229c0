"""torchrec_nas.hardware."""
