"""torchrec_nas: architecture search and hardware cost estimation for TorchRec models."""

from torchrec_nas.space import Architecture, BlockConfig, SearchSpace

__all__ = ["Architecture", "BlockConfig", "SearchSpace", "NASRecModel"]


def __getattr__(name: str) -> object:
    # NASRecModel pulls in torch and torchrec; importing the package for the search space alone
    # (plain data, no torch) stays cheap.
    if name == "NASRecModel":
        from torchrec_nas.models import NASRecModel

        return NASRecModel
    raise AttributeError(name)
