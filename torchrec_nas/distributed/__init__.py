"""Distributed supernet training and search: TorchRec sharding, DCP checkpoints, rank-0 I/O."""
