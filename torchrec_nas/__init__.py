"""torchrec_nas: architecture search and hardware cost estimation for TorchRec models."""

from torchrec_nas.space import Architecture, BlockConfig, SearchSpace

__all__ = ["Architecture", "BlockConfig", "SearchSpace", "NASRecModel", "DLRM_NASRec"]


def __getattr__(name: str) -> object:
    # The models pull in torch and torchrec; importing the package for the search space alone
    # (plain data, no torch) stays cheap.
    if name in ("NASRecModel", "DLRM_NASRec"):
        from torchrec_nas import models

        return getattr(models, name)
    raise AttributeError(name)
